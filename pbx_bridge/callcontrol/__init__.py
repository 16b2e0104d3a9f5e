"""Call control: the PUT PhoneCall actions besides recording (CONTRACT section 8).

- ``sendto.py`` (pure): where a call may be sent (``sendCallTo``);
- ``pbxcalls.py``: the view's channel as the tracker knows it, and the AMI actions with
  their errors (409 when Asterisk refuses, 503/504 when it is gone or silent);
- ``transfer/``: Transfer, TransferToVoicemail (AMI BlindTransfer) and PickUp
  (Originate + PickupChan);
- ``spying/``: BargeIn, Whisper and Monitor (Originate + ChanSpy).

The dialplan contexts used are asterisk-conf/extensions.conf's ``[pbx-bridge-dial]`` and
``[pbx-bridge-voicemail]`` (marked ADAPT for admins).
"""
