"""pbx_bridge: the VoipNow-style UAPI PhoneCalls next to an Asterisk PBX."""

__version__ = "0.1.0"
