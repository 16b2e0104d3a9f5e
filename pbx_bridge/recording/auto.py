"""Recording "always": which views the bridge must start recording by itself, pure.

An extension whose phone terminal setup says call recording on, triggered ``always``,
has every call recorded without anyone asking. The bridge does it (not the dialplan)
because only the bridge knows the view ids that the file names carry: as soon as the
extension's view has an answered, concrete channel that records nothing, MixMonitor is
started there through the same path as StartRecording (same naming, lock and PBX_REC
reservation). A channel is tried once, so a refused start is not retried in a loop; a
new channel of the view (a transfer) is tried again. The shell clears the tried set
after a reconnect, so a bridge restart or a lost AMI link records what it missed.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Mapping

from pbx_bridge.calls.tracker import Call, Channel, Tracker
from pbx_bridge.directory.models import Extension


def records_always(extension: Extension) -> bool:
    return extension.recording.enabled and extension.recording.trigger == "always"


def touched_call(tracker: Tracker, ev: Mapping[str, str]) -> Call | None:
    """The live call an AMI event belongs to (after the tracker has applied it)."""
    linkedid = ev.get("Linkedid") or ev.get("DestLinkedid")
    return tracker.calls.get(linkedid) if linkedid else None


def due(
    tracker: Tracker, call: Call, always: Container[str], tried: Collection[str]
) -> list[tuple[str, Channel]]:
    """(extension, channel) pairs of the call to start recording now."""
    out: list[tuple[str, Channel]] = []
    for ext in call.view_ids:
        if ext not in always:
            continue
        if any(c.recording is not None for c in call.channels_of(ext)):
            continue
        ch = tracker.recording_channel(call, ext)
        if ch is not None and ch.uniqueid not in tried:
            out.append((ext, ch))
    return out
