"""Who may record, and what may stop a recording: one place for the API and *1 alike.

An extension's phone terminal setup says whether its calls may be recorded and what
triggers it:
- ``star1`` (on demand): the user presses *1 (the dialplan reads AstDB, which
  recording/astdb.py fills from `on_demand`), or an app asks with StartRecording;
- ``always``: every call is recorded, by the dialplan when the extension answers (Dial
  U(pbx-bridge-rec), AstDB trigger ``always``) and by the bridge otherwise
  (recording/always.py); no app may stop that (StopRecording is refused), nor *1, and
  StartRecording on it is refused too, as for an extension with recording off.

PauseRecording and ResumeRecording have StartRecording's gate: an app may pause only
what it could have started. A paused recording records nothing, so pausing a mandatory
("always") recording would be stopping it by another name: refused like StopRecording.
"""

from __future__ import annotations

from pbx_bridge.directory.models import Extension
from pbx_bridge.errors import RecordingDisabled

__all__ = ["check_pause", "check_start", "check_stop", "on_demand", "records_always"]


def on_demand(extension: Extension) -> bool:
    """Recording on demand (*1, and StartRecording through the API)."""
    return extension.recording.enabled and extension.recording.trigger == "star1"


def records_always(extension: Extension) -> bool:
    """Every call of the extension is recorded, by the bridge."""
    return extension.recording.enabled and extension.recording.trigger == "always"


def check_start(extension: Extension) -> None:
    """May an app start recording this extension's view? RecordingDisabled if not."""
    if not on_demand(extension):
        raise RecordingDisabled(
            "call recording on demand (*1) is not enabled for this extension"
        )


def check_stop(extension: Extension) -> None:
    """May an app stop recording this extension's view? RecordingDisabled if not."""
    if records_always(extension):
        # The setup records every call of this extension: no app may stop that.
        raise RecordingDisabled(
            "this extension records every call (trigger always); it cannot be stopped"
        )


def check_pause(extension: Extension) -> None:
    """May an app pause (or resume) recording this extension's view? RecordingDisabled
    if not: StartRecording's gate, with its own reason for an "always" extension."""
    if records_always(extension):
        raise RecordingDisabled(
            "this extension records every call (trigger always); it cannot be paused"
        )
    check_start(extension)
