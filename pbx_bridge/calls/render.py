"""A tracked call as the API's PhoneCall JSON (the shape of `calls.model.PhoneCall`).

Plain dicts, not the pydantic models: building and dumping a model per call and view was
two thirds of a 500-call list (bench profile); a unit test validates this output against
the models. Fields without a value are left out, never null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pbx_bridge.calls import model as m
from pbx_bridge.calls.tracker import STATE_UP, Call, Channel, Tracker, seq_of

__all__ = ["caller_id", "render_call"]

_RINGING_DIALSTATUS = frozenset({"RINGING", "PROGRESS", "PROCEEDING"})


def render_call(
    tracker: Tracker,
    call: Call,
    extension: str,
    *,
    visible: Callable[[str], bool] | None = None,
    owner_id: str | None = None,
    owner_name: str | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """The PhoneCall shown for ``extension``: its views are those ``visible`` accepts
    (all without it); ``tracker`` tells local extensions from outside numbers."""
    views = [
        _render_view(tracker, call, ext)
        for ext in call.extensions()
        if visible is None or visible(ext)
    ]
    out: dict[str, Any] = {"id": call.id, "extension": extension}
    if owner_id is not None:
        out["ownerId"] = owner_id
    if owner_name is not None:
        out["ownerName"] = owner_name
    _put(out, "published", m.iso(call.published))
    _put(out, "answered", m.iso(call.answered))
    ctc = call.click_to_call()
    if ctc is not None and ctc.nonce:
        out["nonce"] = ctc.nonce
    out["phoneCallView"] = views
    if link:
        out["link"] = {"self": link}
    return out


def _put(doc: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        doc[key] = value


def _render_view(tracker: Tracker, call: Call, ext: str) -> dict[str, Any]:
    chans = call.view_channels(ext)
    best = max(chans, key=lambda c: (c.state == STATE_UP, seq_of(c.uniqueid)))
    answered = [c.answered for c in chans if c.answered is not None]
    recorders = call.recorders(ext)
    recording = [c.recording for c in recorders if c.recording is not None]
    source, destination = _ends(call)
    view: dict[str, Any] = {
        "id": call.view_ids[ext],
        "extension": ext,
        "status": _status(call, best),
        "flow": _flow(tracker, call, ext),
    }
    _put(view, "callerId", caller_id(call))
    _put(view, "source", source)
    _put(view, "destination", destination)
    if answered:
        view["answered"] = m.iso(min(answered))
    if recording:
        view["recording"] = m.iso(min(recording))
        _put(view, "recordingPaused", _paused(recorders))
        _put(view, "recordingId", next((c.rec_id for c in recorders if c.rec_id), None))
    _call_control(view, call, best)
    return view


def _call_control(view: dict[str, Any], call: Call, best: Channel) -> None:
    """ringing, onHold + holder, parked + parkedPos + parkedBy: all from Asterisk's
    events (Newstate, Hold/Unhold, MusicOnHoldStart/Stop, ParkedCall...)."""
    if best.state == 5 and best.extension is not None:
        view["ringing"] = True
    on_hold, holder = call.hold()
    if on_hold:
        view["onHold"] = True
        _put(view, "holder", holder)
    parking = call.parking()
    if parking is not None:
        view["parked"] = True
        view["parkedPos"] = parking[0]
        _put(view, "parkedBy", parking[1])


def _paused(chans: list[Channel]) -> str | None:
    """When the view's recording was paused, if every recording channel of it is (a view
    with one channel still recording is not paused)."""
    paused = [c.rec_paused for c in chans if c.recording is not None]
    if not paused or None in paused:
        return None
    return m.iso(min(p for p in paused if p is not None))


def _status(call: Call, ch: Channel) -> str:
    s = ch.state
    if s == STATE_UP:
        return m.STATUS_ON_CALL
    if s == 5:  # Ringing: this phone rings
        return m.STATUS_RINGING
    if s == 4:  # Ring: the caller waits for the other side
        others_ringing = any(
            o.state == 5 for o in call.channels.values() if o is not ch
        ) or ch.dial_status in _RINGING_DIALSTATUS
        return m.STATUS_OTHER_SIDE_RINGING if others_ringing else m.STATUS_TRYING
    if s in (0, 9):  # Down / Pre-ring: being set up
        return m.STATUS_TRYING
    if s in (1, 2, 3, 8):
        return m.STATUS_OFF_HOOK
    return m.STATUS_UNKNOWN


def _flow(tracker: Tracker, call: Call, ext: str) -> str:
    if call.origin_ext is None:
        return m.FLOW_INCOMING
    if call.origin_ext != ext:
        return m.FLOW_LOCAL
    others = [e for e in call.extensions() if e != ext]
    if others or tracker.is_local(call.origin_exten):
        return m.FLOW_LOCAL
    return m.FLOW_OUTGOING


def caller_id(call: Call) -> str | None:
    num = call.origin_num if call.origin_num not in ("", "<unknown>") else ""
    name = call.origin_name if call.origin_name not in ("", "<unknown>") else ""
    if not num and not name:
        return None
    if not num:
        return name  # "Name <>" would promise a number there is none of
    return f"{name} <{num}>" if name else f"<{num}>"


def _ends(call: Call) -> tuple[list[str] | None, list[str] | None]:
    ctc = call.click_to_call()
    if ctc is not None:  # the numbers the click-to-call joins, as its channel says
        return [ctc.source], [ctc.destination]
    src = call.origin_num if call.origin_num not in ("", "<unknown>") else None
    dest = call.origin_exten if call.origin_exten not in ("", "s") else None
    if dest is None:
        others = [e for e in call.extensions() if e != call.origin_ext]
        dest = others[0] if others else None
    return ([src] if src else None, [dest] if dest else None)
