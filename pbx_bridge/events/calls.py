"""Call events, pure: after the tracker applied an AMI event (or a resync), compare each
view of the touched call with what was last announced for it, and say what changed.

Per view (one local extension of one call): ``call.ringing`` once (VoipNow's Dial-Out
for the calling extension as soon as it dials, Dial-In for a called one once it rings
or answers), ``call.answered`` once its status is "on call" (Answer on incoming /
outgoing), ``call.hangup`` when it leaves the call (only for a view that was announced),
with the PhoneCall as it was last seen. ``data`` = that PhoneCall plus
``callEventType`` (VoipNow's 0-4) and ``direction`` (``in``: the extension received the
call, ``out``: it made it). States shown come from Asterisk's events (the
tracker), never from what was asked. Each draft's ``key`` (events/keys.py) names the
view by its call and its first channel, so bridges hearing the same AMI events agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from operator import attrgetter
from typing import Any

from pbx_bridge.calls import model as m
from pbx_bridge.calls.tracker import Call, Channel, Tracker, call_id
from pbx_bridge.events.keys import UNKNOWN_ANCHOR, call_key, first_channel
from pbx_bridge.events.model import (
    CALL_ANSWER_IN,
    CALL_ANSWER_OUT,
    CALL_DIAL_IN,
    CALL_DIAL_OUT,
    CALL_HANGUP,
    Draft,
)

__all__ = ["CallEvents", "Phase"]

Event = Mapping[str, str]
Render = Callable[[Call, str], dict[str, Any]]
Phase = str  # "ringing" | "answered": what was last announced for a view
_RINGS = frozenset({m.STATUS_RINGING, m.STATUS_ON_CALL})
# Every field of a call and of its channels: what a render (calls/render.py) and
# Call.extensions() can read, besides the directory and the tracker's devices.
_CALL_STATE = attrgetter(*(f.name for f in fields(Call) if f.name not in ("channels", "view_ids")))
_CHANNEL_STATE = attrgetter(*(f.name for f in fields(Channel)))


def _state(call: Call) -> tuple[Any, ...]:
    """The call as values (C-level getters): equal states render equal documents."""
    return (_CALL_STATE(call), tuple(call.view_ids.items()),
            tuple(map(_CHANNEL_STATE, call.channels.values())))


class CallEvents:
    """``render(call, extension)``: the PhoneCall as that extension's subscribers see it.
    ``announced``: (phoneCallId, extension) -> phase already announced (by a bridge
    before a restart), so that a resync does not announce a view twice; ``anchors``:
    the same views' anchors (events/keys.py), as the history's keys name them."""

    def __init__(
        self,
        tracker: Tracker,
        render: Render,
        announced: Mapping[tuple[str, str], Phase] | None = None,
        anchors: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.tracker = tracker
        self._render = render
        self._phases: dict[str, dict[str, Phase]] = {}  # call id -> extension -> phase
        self._last: dict[str, dict[str, dict[str, Any]]] = {}  # as last seen
        self._anchors: dict[str, dict[str, str]] = {}  # call id -> extension -> anchor
        for (cid, ext), phase in (announced or {}).items():
            self._phases.setdefault(cid, {})[ext] = phase
        for (cid, ext), anchor in (anchors or {}).items():
            self._anchors.setdefault(cid, {})[ext] = anchor
        # call id -> its state at its last review. Most AMI events (Newexten, VarSet,
        # ...) change nothing a view shows: a call whose state is unchanged would render
        # the same documents and announce nothing, so it is not rendered again.
        self._reviewed: dict[str, tuple[Any, ...]] = {}
        self._devices_version = tracker.devices_version  # the map those renders saw

    def forget_renders(self) -> None:
        """The directory or the devices changed: render every call again."""
        self._reviewed.clear()

    def on_event(self, ev: Event) -> list[Draft]:
        linkedid = ev.get("Linkedid")
        if not linkedid:
            return []
        return self._review(linkedid, self.tracker.event_time(ev))

    def on_snapshot(self, now: float) -> list[Draft]:
        """After a resync: every live call, and every announced call that is gone."""
        if self.tracker.devices_version != self._devices_version:
            # The resync brought another device map: every render may differ. The same
            # map (the usual case) keeps them: rendering every live call again was a
            # quarter of a resync with 1,000 channels (issue 15).
            self._devices_version = self.tracker.devices_version
            self.forget_renders()
        out: list[Draft] = []
        live = {call_id(lid): lid for lid in self.tracker.calls}
        for lid in live.values():
            out += self._review(lid, now)
        for cid in [c for c in self._phases if c not in live]:
            out += self._gone(cid, set(self._phases[cid]), now)
            self._forget(cid)
        return out

    def _review(self, linkedid: str, now: float) -> list[Draft]:
        call = self.tracker.calls.get(linkedid)
        if call is not None:
            state = _state(call)
            if self._reviewed.get(call.id) == state:
                return []
            self._reviewed[call.id] = state
        cid = call.id if call is not None else call_id(linkedid)
        present = call.extensions() if call is not None else []
        phases = self._phases.setdefault(cid, {})
        out: list[Draft] = []
        if call is not None:
            for ext in present:
                out += self._view(call, ext, phases, now)
        out += self._gone(cid, set(phases) - set(present), now)
        if not present:
            self._forget(cid)
        return out

    def _view(self, call: Call, ext: str, phases: dict[str, Phase], now: float) -> list[Draft]:
        outgoing = call.origin_ext == ext
        doc = {**self._render(call, ext), "direction": "out" if outgoing else "in"}
        self._last.setdefault(call.id, {})[ext] = doc
        status = next((v["status"] for v in doc["phoneCallView"] if v["extension"] == ext), "0")
        out: list[Draft] = []
        if ext not in phases and (outgoing or status in _RINGS):
            phases[ext] = "ringing"
            self._anchors.setdefault(call.id, {})[ext] = first_channel(
                c.uniqueid for c in call.view_channels(ext))
            out.append(self._draft("call.ringing", now, ext, call.id, doc,
                                   CALL_DIAL_OUT if outgoing else CALL_DIAL_IN))
        if status == m.STATUS_ON_CALL and phases.get(ext) == "ringing":
            phases[ext] = "answered"
            out.append(self._draft("call.answered", now, ext, call.id, doc,
                                   CALL_ANSWER_OUT if outgoing else CALL_ANSWER_IN))
        return out

    def _gone(self, cid: str, extensions: set[str], now: float) -> list[Draft]:
        phases = self._phases.get(cid, {})
        last = self._last.get(cid, {})
        out = []
        for ext in sorted(extensions):
            phases.pop(ext, None)
            doc = last.pop(ext, None)
            if doc is None:  # announced before a restart, never seen since: the id is all
                doc = {"id": cid, "extension": ext, "phoneCallView": []}  # we know
            out.append(self._draft("call.hangup", now, ext, cid, doc, CALL_HANGUP))
            self._anchors.get(cid, {}).pop(ext, None)
        return out

    def _forget(self, cid: str) -> None:
        self._reviewed.pop(cid, None)
        self._phases.pop(cid, None)
        self._last.pop(cid, None)
        self._anchors.pop(cid, None)

    def _draft(self, kind: str, now: float, ext: str, cid: str, doc: dict[str, Any],
               code: int) -> Draft:
        anchor = self._anchors.get(cid, {}).get(ext, UNKNOWN_ANCHOR)
        return Draft(type=kind, time=now, extension=ext, phone_call_id=cid,
                     data={**doc, "callEventType": code},
                     key=call_key(kind.removeprefix("call."), cid, anchor, ext))
