"""The call tracker: AMI events in, live calls and their per-extension views out.

A pure core: no sockets, no clock of its own (`clock` is injected and used only when an
event carries no Timestamp). Feed it events in stream order with `feed`, and on every
(re)connect hand it the channel list Asterisk reports (`resync`).

How it stays true to the PBX:
- Calls are *derived* from live channels grouped by their current Linkedid, so a call
  can never outlive its channels, and a channel whose Linkedid changes (Asterisk moves
  bridged channels to the oldest Linkedid, e.g. on attended transfer) moves with it.
- Every event that carries a channel snapshot (plain, `Dest*`, `LocalOne*`, transfer
  prefixes...) updates that channel; a missed Newchannel is recovered from the next
  snapshot, and a hung-up channel is remembered (tombstone) so late or reordered events
  can never resurrect it.
- What only the bridge knows (view id, answer time) is written back onto the channel as
  the PBX_VIEW variable (see `take_effects`); a resync after a bridge restart or an AMI
  drop therefore rebuilds the same views with the same ids and times.
- Whether a channel records is the recording feature's to say (it reads MixMonitor
  events and its own channel variables: pbx_bridge/recording/events.py); it tells the
  tracker through `mark_recording` / `clear_recording` (and `mark_paused` /
  `clear_paused` for a paused recording), the only writers of a channel's recording
  state. The tracker knows nothing of how recordings are started or named.

Rendering a call as the API's JSON is `calls/render.py`'s.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pbx_bridge.calls.clicktocall import CTC_VAR_HEADER, CtcTag, parse_tag

Event = Mapping[str, str]

# Prefixes under which AMI events carry channel snapshots.
SNAPSHOT_PREFIXES = (
    "",
    "Dest",
    "LocalOne",
    "LocalTwo",
    "Transferer",
    "Transferee",
    "TransferTarget",
    "SecondTransferer",
    "OrigTransferer",
    "Target",
    "Spyee",
    "Spyer",
    "Parkee",
    "Parker",
)
_PREFIX_KEYS = tuple((p, p + "Uniqueid") for p in SNAPSHOT_PREFIXES)
# Events whose snapshots describe a channel that is going away: never create from them.
_NO_CREATE = frozenset({"Hangup", "HangupRequest", "SoftHangupRequest", "MixMonitorStop"})
# Events with a Uniqueid that are no channel snapshot. OriginateResponse reports how an
# Originate ended: its caller id is "<unknown>", and when it failed its Uniqueid is
# "<unknown>" and its Channel the dialled string ("PJSIP/0003*210"), a ghost channel.
_NOT_SNAPSHOTS = frozenset({"OriginateResponse"})
# res_parking: the parkee leaves its lot (answered from the slot, timed out, gave up).
_UNPARKED = frozenset({"UnParkedCall", "ParkedCallTimeOut", "ParkedCallGiveUp"})
_TOMBSTONES = 50_000
STATE_UP = 6
_VIEW_VAR = "ChanVariable(PBX_VIEW)"


def call_id(linkedid: str) -> str:
    """The public PhoneCall id: stable for the Linkedid, so across restarts and reconnects.

    The *1 dialplan subroutine computes the same value (SHA1 of the Linkedid, 20 hex)."""
    return hashlib.sha1(linkedid.encode()).hexdigest()[:20]


def finite_epoch(text: str | None) -> float | None:
    """A positive, finite epoch from AMI text, or None (garbage never becomes a time)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < 1e11 else None


def _epoch_of(uniqueid: str) -> float | None:
    # Uniqueid/Linkedid are "[systemname-]<epoch>.<sequence>".
    return finite_epoch(uniqueid.rsplit("-", 1)[-1].split(".", 1)[0])


def seq_of(uniqueid: str) -> tuple[float, int]:
    tail = uniqueid.rsplit("-", 1)[-1]
    epoch, _, seq = tail.partition(".")
    try:
        return (finite_epoch(epoch) or float("inf"), int(seq or 0))
    except ValueError:
        return (float("inf"), 0)


def device_of(channel_name: str) -> str:
    """'PJSIP/0003*210-0000002a' -> 'PJSIP/0003*210'; 'Local/x@ctx-0001;2' stays Local."""
    base, sep, _tail = channel_name.rpartition("-")
    return base if sep else channel_name


def is_local_half(channel_name: str) -> bool:
    return channel_name.startswith("Local/")


@dataclass(slots=True)
class SetVar:
    """An effect for the shell: set a channel variable through AMI Setvar."""

    channel: str
    variable: str
    value: str


@dataclass(slots=True, eq=False)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    state: int = 0
    caller_num: str = ""
    caller_name: str = ""
    exten: str = ""  # what was dialled when the channel appeared
    created: float = 0.0
    answered: float | None = None
    extension: str | None = None  # the local extension whose device this is
    recording: float | None = None  # when the running MixMonitor started
    rec_file: str | None = None
    rec_paused: float | None = None  # when the running recording was paused (muted)
    rec_id: str | None = None  # the running recording's id in the recordings catalog
    dial_status: str = ""
    view_tag: str = ""  # last PBX_VIEW value seen on the channel
    on_hold: bool = False  # its device holds the call (Hold/Unhold: a SIP re-INVITE)
    moh: bool = False  # it hears music on hold (MusicOnHoldStart/Stop)
    parked: str | None = None  # the parking space it waits in (ParkedCall)
    parked_by: str | None = None  # the local extension that parked it
    # The recording feature is re-arming its MixMonitor (recording/rearm.py): the
    # MixMonitorStop it causes does not end the run for the recordings catalog.
    rearming: bool = False
    ctc_tag: str = ""  # last PBX_CTC value seen (a click-to-call's first leg)


@dataclass(slots=True, eq=False)
class Call:
    linkedid: str
    id: str
    published: float
    channels: dict[str, Channel] = field(default_factory=dict)
    view_ids: dict[str, str] = field(default_factory=dict)  # extension -> "01"...
    next_view: int = 1
    # The calling party, remembered from the originating channel (Uniqueid == Linkedid).
    origin_uid: str = ""
    origin_ext: str | None = None
    origin_num: str = ""
    origin_name: str = ""
    origin_exten: str = ""

    def add_view(self, extension: str, view_tag: str) -> None:
        """Give the extension its view id: the one a bridge tagged its channel with for
        this call (PBX_VIEW), if free, else the next one."""
        linked, _, rest = view_tag.partition("|")
        tagged = rest.partition("|")[0]
        free = tagged not in self.view_ids.values()
        if linked == self.linkedid and tagged.isascii() and tagged.isdigit() and free:
            self.view_ids[extension] = tagged
            self.next_view = max(self.next_view, int(tagged) + 1)
            return
        self.view_ids[extension] = f"{self.next_view:02d}"
        self.next_view += 1

    def take_origin(self, ch: Channel) -> None:
        """The originating channel (Uniqueid == Linkedid) defines the calling party;
        until it is seen, the first channel stands in for it."""
        self.origin_uid = ch.uniqueid
        self.origin_ext = ch.extension
        self.origin_num = ch.caller_num
        self.origin_name = ch.caller_name
        self.origin_exten = ch.exten

    def channels_of(self, extension: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.extension == extension]

    def view_channels(self, extension: str) -> list[Channel]:
        """What the extension's view shows: its own channels or, once it parked the call
        and left, the channels it parked (the parker keeps its view while they wait)."""
        return self.channels_of(extension) or [
            c for c in self.channels.values() if c.parked is not None
            and c.parked_by == extension
        ]

    def hold(self) -> tuple[bool, str | None]:
        """Is the call on hold, and by whom. A device holding it (Hold) is the holder;
        otherwise a party hearing music on hold outside a parking lot (the API's OnHold)
        is held by the other parties still up (the first of them with an extension)."""
        for c in self.channels.values():
            if c.on_hold:
                return True, c.extension or c.caller_num or None
        if not any(c.moh and c.parked is None for c in self.channels.values()):
            return False, None
        others = [c for c in self.channels.values() if not c.moh and c.parked is None
                  and c.state == STATE_UP]
        holder = next((c.extension for c in others if c.extension), None)
        return True, holder

    def parking(self) -> tuple[str, str | None] | None:
        """(space, parker) of a party of the call waiting in a parking lot, if any."""
        for c in self.channels.values():
            if c.parked is not None:
                return c.parked, c.parked_by
        return None

    def recorders(self, extension: str) -> list[Channel]:
        """The channels whose recording the extension's view shows: its own and, for the
        extension that placed the call, the Local halves of the chain it placed (a ring
        group or queue may record on a Local channel, which no extension owns)."""
        own = self.channels_of(extension)
        if extension != self.origin_ext:
            return own
        return own + [c for c in self.channels.values() if c.extension is None
                      and is_local_half(c.name)]

    def extensions(self) -> list[str]:
        """Local extensions taking part now, in view order."""
        present = {c.extension for c in self.channels.values() if c.extension}
        present.update(c.parked_by for c in self.channels.values()
                       if c.parked is not None and c.parked_by)
        return [e for e, _ in sorted(self.view_ids.items(), key=lambda kv: kv[1]) if e in present]

    def click_to_call(self) -> CtcTag | None:
        """The click-to-call mark of this call (calls/clicktocall.py): from a channel of
        it whose PBX_CTC names this very call (its Linkedid)."""
        for ch in self.channels.values():
            if ch.ctc_tag:
                tag = parse_tag(ch.ctc_tag)
                if tag is not None and tag.call_ref == self.linkedid:
                    return tag
        return None

    @property
    def answered(self) -> float | None:
        times = [c.answered for c in self.channels.values() if c.answered is not None]
        return min(times) if times else None


class _ExtensionCalls:
    """extension -> {linkedid: how many of the call's channels are the extension's}."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = {}

    def linkedids(self, extension: str) -> Mapping[str, int]:
        return self._counts.get(extension, {})

    def add(self, extension: str, linkedid: str) -> None:
        counts = self._counts.setdefault(extension, {})
        counts[linkedid] = counts.get(linkedid, 0) + 1

    def remove(self, extension: str, linkedid: str) -> None:
        counts = self._counts.get(extension)
        if counts is None:
            return
        n = counts.get(linkedid, 0) - 1
        if n > 0:
            counts[linkedid] = n
            return
        counts.pop(linkedid, None)
        if not counts:
            del self._counts[extension]


class Tracker:
    def __init__(
        self,
        devices: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}  # by Linkedid
        self._by_id: dict[str, Call] = {}  # by public id
        self._ext_calls = _ExtensionCalls()
        self._tombstones: OrderedDict[str, None] = OrderedDict()
        self._effects: list[SetVar] = []
        self._clock = clock
        self.events = 0
        self._devices: dict[str, str] = {}
        self.devices_version = 0  # bumped when set_devices brings another map
        self.set_devices(devices or {})

    # ------------------------------------------------------------------ directory
    def set_devices(self, devices: Mapping[str, str]) -> None:
        """device ('PJSIP/0003*210') -> extension number; re-labels live channels."""
        if devices != self._devices:
            # Renders depend on the map (which numbers are local) beyond each channel's
            # extension: a resync that brings the same map lets them be kept.
            self.devices_version += 1
        self._devices = dict(devices)
        self._numbers = frozenset(self._devices.values())
        for ch in list(self.channels.values()):
            ext = self._devices.get(device_of(ch.name))
            if ext != ch.extension:
                call = self.calls.get(ch.linkedid)
                if call:
                    self._detach(call, ch)
                ch.extension = ext
                if call:
                    self._attach(ch)

    # ------------------------------------------------------------------ queries
    def extension_of(self, channel_name: str) -> str | None:
        """The local extension a channel name belongs to, if any."""
        return self._devices.get(device_of(channel_name))

    def is_local(self, number: str) -> bool:
        """Is ``number`` one of the directory's extensions (a device is mapped to it)?"""
        return number in self._numbers

    def event_time(self, ev: Event) -> float:
        """When an event happened: its Timestamp, else the injected clock's now."""
        return finite_epoch(ev.get("Timestamp")) or self._clock()

    def call(self, public_id: str) -> Call | None:
        return self._by_id.get(public_id)

    def calls_of(self, extension: str) -> list[Call]:
        ids = self._ext_calls.linkedids(extension)
        return sorted((self.calls[lid] for lid in ids), key=lambda c: (c.published, c.linkedid))

    def take_effects(self) -> list[SetVar]:
        out, self._effects = self._effects, []
        return out

    def view_extension(self, ch: Channel) -> str | None:
        """The extension whose view shows what happens on this channel: its own, or for
        a Local half, the extension that placed the call (see `Call.recorders`)."""
        if ch.extension is not None or not is_local_half(ch.name):
            return ch.extension
        call = self.calls.get(ch.linkedid)
        return call.origin_ext if call is not None else None

    def recording_channel(self, call: Call, extension: str) -> Channel | None:
        """The concrete, answered channel of the extension's view (never a Local half)."""
        up = [c for c in call.channels_of(extension) if c.state == STATE_UP]
        if not up:
            return None
        return max(up, key=lambda c: seq_of(c.uniqueid))

    # ------------------------------------------------------------------ recordings
    def mark_recording(self, uniqueid: str, started: float, file: str | None) -> None:
        """The recording feature says a MixMonitor runs on this live channel since
        ``started``, writing ``file``. Unknown or gone channels are ignored."""
        ch = self.channels.get(uniqueid)
        if ch is not None:
            if ch.recording != started:  # another recording: it starts unpaused, unnamed
                ch.rec_paused = ch.rec_id = None
            ch.recording, ch.rec_file = started, file

    def clear_recording(self, uniqueid: str) -> None:
        """The recording feature says nothing records on this channel (any more)."""
        ch = self.channels.get(uniqueid)
        if ch is not None:
            ch.recording, ch.rec_file, ch.rec_paused, ch.rec_id = None, None, None, None

    def name_recording(self, uniqueid: str, recording_id: str) -> None:
        """The recordings catalog names the channel's running recording (its row id).
        Ignored for a channel that is unknown, gone or not recording."""
        ch = self.channels.get(uniqueid)
        if ch is not None and ch.recording is not None:
            ch.rec_id = recording_id

    def mark_paused(self, uniqueid: str, since: float) -> None:
        """The recording feature says the channel's running recording is paused (muted)
        since ``since``. Ignored for a channel that is unknown, gone or not recording."""
        ch = self.channels.get(uniqueid)
        if ch is not None and ch.recording is not None:
            ch.rec_paused = since

    def clear_paused(self, uniqueid: str) -> None:
        """The recording feature says the channel's recording is not paused (any more)."""
        ch = self.channels.get(uniqueid)
        if ch is not None:
            ch.rec_paused = None

    # ------------------------------------------------------------------ events
    def feed_many(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.feed(ev)

    def feed(self, ev: Event) -> None:
        """Apply one AMI event. Never raises on unknown, partial or reordered events."""
        self.events += 1
        name = ev.get("Event")
        if name is None:
            return
        ts = self.event_time(ev)

        if name == "Hangup":
            uid = ev.get("Uniqueid")
            if uid:
                self._hangup(uid)
            return
        if name in _NOT_SNAPSHOTS:
            return

        create = name not in _NO_CREATE
        for prefix, key in _PREFIX_KEYS:
            if key in ev:
                self._snapshot(ev, prefix, ts, create)
        if name == "ParkedCall" or name in _UNPARKED:
            self._park(ev, name == "ParkedCall")
            return
        uid = ev.get("Uniqueid")
        ch = self.channels.get(uid) if uid else None
        if ch is None:
            return
        if name in ("DialState", "DialEnd", "DialBegin"):
            ch.dial_status = ev.get("DialStatus", "")
        elif name == "Hold":
            ch.on_hold = True
        elif name == "Unhold":
            ch.on_hold = False
        elif name == "MusicOnHoldStart":
            ch.moh = True
        elif name == "MusicOnHoldStop":
            ch.moh = False
        elif name == "Rename" and ev.get("Newname"):
            ch.name = ev["Newname"]

    def _park(self, ev: Event, parked: bool) -> None:
        """ParkedCall: the parkee waits in a space, on behalf of the extension whose
        device the lot calls back (ParkerDialString). The other events: it left."""
        ch = self.channels.get(ev.get("ParkeeUniqueid", ""))
        if ch is None:
            return
        call = self.calls.get(ch.linkedid)
        if call is not None and ch.parked is not None and ch.parked_by:
            self._ext_calls.remove(ch.parked_by, call.linkedid)
        if parked:
            ch.parked = ev.get("ParkingSpace") or "?"
            ch.parked_by = self._devices.get(ev.get("ParkerDialString", ""))
        else:
            ch.parked = ch.parked_by = None
        if call is not None:
            self._index_parker(call, ch)

    def _index_parker(self, call: Call, ch: Channel) -> None:
        """The parker of a parked channel keeps a view of its call (Call.view_channels)."""
        if ch.parked is not None and ch.parked_by:
            if ch.parked_by not in call.view_ids:
                call.add_view(ch.parked_by, "")
            self._ext_calls.add(ch.parked_by, call.linkedid)

    def _snapshot(self, ev: Event, p: str, ts: float, create: bool) -> None:
        uid = ev[p + "Uniqueid"]
        if not uid or uid == "<unknown>" or uid in self._tombstones:
            return
        linkedid = ev.get(p + "Linkedid") or uid
        name = ev.get(p + "Channel", "")
        ch = self.channels.get(uid)
        if ch is None:
            if not create or not name:
                return
            ch = Channel(
                uniqueid=uid,
                name=name,
                linkedid=linkedid,
                exten=ev.get(p + "Exten", ""),
                created=_epoch_of(uid) or ts,
                extension=self._devices.get(device_of(name)),
            )
            self.channels[uid] = ch
            # A channel first seen already answered (resync, missed events): its answer
            # time is the one a bridge wrote onto it earlier, if any.
            tag_lid, _, rest = ev.get(p + _VIEW_VAR, "").partition("|")
            answered = finite_epoch(rest.partition("|")[2])
            if tag_lid == linkedid and answered is not None:
                ch.answered = answered
            self._update(ch, ev, p, ts)
            self._attach(ch)
            return
        if linkedid != ch.linkedid:
            old = self.calls.get(ch.linkedid)
            if old is not None:
                self._detach(old, ch)
            ch.linkedid = linkedid
            self._update(ch, ev, p, ts)
            self._attach(ch)
            return
        if name and name != ch.name:
            ch.name = name
        self._update(ch, ev, p, ts)

    def _update(self, ch: Channel, ev: Event, p: str, ts: float) -> None:
        state = ev.get(p + "ChannelState")
        if state is not None and state.isascii() and state.isdigit():  # not "²"
            ch.state = int(state)
            if ch.state == STATE_UP and ch.answered is None:
                ch.answered = ts
                self._tag_view(ch)
        num = ev.get(p + "CallerIDNum")
        if num is not None:
            ch.caller_num = num
            ch.caller_name = ev.get(p + "CallerIDName", ch.caller_name)
        tag = ev.get(p + _VIEW_VAR)
        if tag is not None:
            ch.view_tag = tag
        ctc = ev.get(p + CTC_VAR_HEADER)
        if ctc is not None:
            ch.ctc_tag = ctc

    def _hangup(self, uid: str) -> None:
        self._tombstones[uid] = None
        if len(self._tombstones) > _TOMBSTONES:
            self._tombstones.popitem(last=False)
        ch = self.channels.pop(uid, None)
        if ch is None:
            return
        call = self.calls.get(ch.linkedid)
        if call is not None:
            self._detach(call, ch)

    # ------------------------------------------------------------------ calls
    def _attach(self, ch: Channel) -> None:
        call = self.calls.get(ch.linkedid)
        if call is None:
            call = Call(
                linkedid=ch.linkedid,
                id=call_id(ch.linkedid),
                published=_epoch_of(ch.linkedid) or ch.created,
            )
            self.calls[ch.linkedid] = call
            self._by_id[call.id] = call
        call.channels[ch.uniqueid] = ch
        if ch.uniqueid == call.linkedid or not call.origin_uid:
            call.take_origin(ch)
        if ch.extension:
            self._assign_view(call, ch)
            self._ext_calls.add(ch.extension, call.linkedid)
        self._index_parker(call, ch)

    def _detach(self, call: Call, ch: Channel) -> None:
        if call.channels.pop(ch.uniqueid, None) is None:
            return
        if ch.extension:
            self._ext_calls.remove(ch.extension, call.linkedid)
        if ch.parked is not None and ch.parked_by:
            self._ext_calls.remove(ch.parked_by, call.linkedid)
        if not call.channels:
            del self.calls[call.linkedid]
            self._by_id.pop(call.id, None)

    def _assign_view(self, call: Call, ch: Channel) -> None:
        assert ch.extension is not None
        if ch.extension not in call.view_ids:
            call.add_view(ch.extension, ch.view_tag)
        self._tag_view(ch)

    def _tag_view(self, ch: Channel) -> None:
        """Write the view id and answer time onto an answered channel (see module doc)."""
        if ch.extension is None or ch.answered is None:
            return
        call = self.calls.get(ch.linkedid)
        if call is None or ch.uniqueid not in call.channels:
            return
        vid = call.view_ids.get(ch.extension)
        if vid is None:
            return
        tag = f"{ch.linkedid}|{vid}|{int(ch.answered)}"
        if tag != ch.view_tag:
            ch.view_tag = tag
            self._effects.append(SetVar(ch.name, "PBX_VIEW", tag))

    # ------------------------------------------------------------------ resync
    def resync(self, snapshot: Iterable[Event], now: float | None = None) -> None:
        """Replace the live picture with Asterisk's channel list (CoreShowChannel events).

        Channels not in the list are gone (hung up while we were away, or Asterisk
        restarted); new ones are created in creation order so views keep join order;
        PBX_VIEW restores view ids and answer times (the recording feature reads the
        same rows for recordings)."""
        ts = self._clock() if now is None else now
        items = [ev for ev in snapshot if ev.get("Uniqueid")]
        live = {ev["Uniqueid"] for ev in items}
        for uid in [u for u in self.channels if u not in live]:
            self._hangup(uid)
        items.sort(key=lambda ev: seq_of(ev["Uniqueid"]))
        for ev in items:
            uid = ev["Uniqueid"]
            self._tombstones.pop(uid, None)
            known = uid in self.channels
            self._snapshot(ev, "", ts, True)
            ch = self.channels.get(uid)
            if ch is None:
                continue
            if not known and ch.state == STATE_UP and ch.answered is None:
                # Answer time unknown (never tagged): the channel's creation is the
                # closest truthful bound we have.
                ch.answered = ch.created
                self._tag_view(ch)
