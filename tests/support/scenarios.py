"""Call scenarios played with real SIP phones on the sandbox Asterisk.

Each scenario drives baresip phones through one situation the tracker must follow (A
calls B, transfers, hold, Local channels...) and declares, at checkpoints, which calls
and views a user should see. At each checkpoint the run also records what Asterisk
itself reports (CoreShowChannels) and where in the event stream it was taken.

The integration tier runs the scenarios live and compares the tracker with Asterisk;
`python -m tests.support.capture` runs them once and commits the event transcripts and
checkpoints to tests/fixtures/, which the unit tier replays without Asterisk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from devtools.phones import Phone
from devtools.sandbox import Sandbox
from pbx_bridge.callcontrol import pbxcalls
from pbx_bridge.callcontrol.spying.options import chanspy_data
from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Tracker
from pbx_bridge.holding import pbx as holding_pbx
from pbx_bridge.pbx.ami import AmiClient
from tests.support.pbx import EventLog

DEMO_EXTENSIONS = ("0003*210", "0003*211", "0003*212", "0003*213", "0004*210")
DEVICES = {f"PJSIP/{e}": e for e in DEMO_EXTENSIONS}
CARRIER = "7775555"  # the public number that calls in through the "pstn" trunk


@dataclass
class V:
    """What one view should show; None means "not checked"."""

    extension: str
    status: str | None = None
    flow: str | None = None
    recording: bool | None = None
    source: list[str] | None = None
    destination: list[str] | None = None
    # ringing, onHold, holder, parked, parkedPos, parkedBy: exactly these (absent ones
    # absent) when given
    call_control: dict[str, Any] | None = None


CALL_CONTROL = ("ringing", "onHold", "holder", "parked", "parkedPos", "parkedBy")


@dataclass
class Checkpoint:
    label: str
    expected: list[list[V]]  # calls in publication order, each its views in id order
    event_index: int = 0
    asterisk: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "event_index": self.event_index,
            "expected": [[asdict(v) for v in call] for call in self.expected],
            "asterisk": self.asterisk,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            label=data["label"],
            expected=[[V(**v) for v in call] for call in data["expected"]],
            event_index=data["event_index"],
            asterisk=data["asterisk"],
        )


class Run:
    def __init__(
        self,
        sandbox: Sandbox,
        phones: Callable[..., Awaitable[Phone]],
        client: AmiClient,
        log: EventLog,
    ) -> None:
        self.sandbox = sandbox
        self.phone = phones
        self.client = client
        self.log = log
        self.checkpoints: list[Checkpoint] = []
        # Called at every checkpoint, e.g. to compare a live tracker with Asterisk.
        self.on_checkpoint: Callable[[Checkpoint], None] | None = None

    async def settle(self, quiet: float = 0.4, timeout: float = 10.0) -> None:
        """Wait until no AMI event has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = len(self.log.events)
            await asyncio.sleep(quiet)
            if len(self.log.events) == n:
                return

    async def checkpoint(self, label: str, expected: list[list[V]]) -> Checkpoint:
        # The snapshot must sit at a known place in the event stream: take it only
        # when no event arrives around it (Asterisk keeps working after a phone's own
        # event, e.g. optimizing Local channels away).
        for _ in range(20):
            await self.settle()
            before = len(self.log.events)
            _, items = await self.client.send_list_action("CoreShowChannels")
            await asyncio.sleep(0.3)
            if len(self.log.events) == before:
                break
        else:
            raise AssertionError(f"[{label}] the PBX never went quiet for a snapshot")
        keep = ("Channel", "Uniqueid", "Linkedid", "ChannelState", "ChannelStateDesc")
        cp = Checkpoint(
            label=label,
            expected=expected,
            event_index=before,
            asterisk=[
                {k: it.get(k, "") for k in keep}
                for it in items
                if it.get("Event") == "CoreShowChannel"
            ],
        )
        self.checkpoints.append(cp)
        if self.on_checkpoint is not None:
            self.on_checkpoint(cp)
        return cp

    async def wait_event(self, name: str, **headers: str) -> dict[str, str]:
        return await self.log.wait_for(name, timeout=15, **headers)


# --------------------------------------------------------------------------- checking
def compare(tracker: Tracker, cp: Checkpoint) -> list[str]:
    """Differences between the tracker and (a) Asterisk's own channel list, (b) the
    scenario's expectations. Empty when they agree."""
    problems: list[str] = []
    truth = {c["Uniqueid"]: c for c in cp.asterisk}
    mine = tracker.channels
    if set(truth) != set(mine):
        problems.append(
            f"[{cp.label}] channels: asterisk {sorted(c['Channel'] for c in truth.values())} "
            f"tracker {sorted(c.name for c in mine.values())}"
        )
    for uid, c in truth.items():
        ch = mine.get(uid)
        if ch is not None and ch.linkedid != c["Linkedid"]:
            problems.append(
                f"[{cp.label}] {c['Channel']}: linkedid {ch.linkedid} != {c['Linkedid']}"
            )
        if ch is not None and str(ch.state) != c["ChannelState"]:
            problems.append(f"[{cp.label}] {c['Channel']}: state {ch.state} != {c['ChannelState']}")
    truth_calls = {c["Linkedid"] for c in truth.values()}
    if truth_calls != set(tracker.calls):
        problems.append(f"[{cp.label}] calls: asterisk {truth_calls} tracker {set(tracker.calls)}")

    rendered = []
    for call in sorted(tracker.calls.values(), key=lambda c: (c.published, c.linkedid)):
        views = render_call(tracker, call, "")["phoneCallView"]
        if views:
            rendered.append(views)
    if len(rendered) != len(cp.expected):
        problems.append(
            f"[{cp.label}] {len(rendered)} calls with views, expected {len(cp.expected)}: "
            f"{rendered}"
        )
        return problems
    for got_call, want_call in zip(rendered, cp.expected, strict=True):
        got_exts = [v["extension"] for v in got_call]
        want_exts = [v.extension for v in want_call]
        if got_exts != want_exts:
            problems.append(f"[{cp.label}] views {got_exts}, expected {want_exts}")
            continue
        for got, want in zip(got_call, want_call, strict=True):
            for attr in ("status", "flow", "source", "destination"):
                exp = getattr(want, attr)
                if exp is not None and got.get(attr) != exp:
                    problems.append(
                        f"[{cp.label}] {want.extension}.{attr} = {got.get(attr)!r}, "
                        f"expected {exp!r}"
                    )
            shown = {k: got[k] for k in CALL_CONTROL if k in got}
            if want.call_control is not None and shown != want.call_control:
                problems.append(f"[{cp.label}] {want.extension} call control {shown}, "
                                f"expected {want.call_control}")
            if want.recording is not None and ("recording" in got) != want.recording:
                problems.append(
                    f"[{cp.label}] {want.extension}.recording = {got.get('recording')!r}, "
                    f"expected {'a time' if want.recording else 'absent'}"
                )
    return problems


# --------------------------------------------------------------------------- scenarios
A, B, C = "0003*210", "0003*211", "0003*212"


async def a_calls_b(run: Run) -> None:
    """A calls B, B answers, A toggles recording with *1 twice, B hangs up."""
    run.sandbox.cli(f"database put pbx_bridge/rec {A} wav,3,{A}")
    a, b = await run.phone(A), await run.phone(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await run.checkpoint("ringing", [[V(A, "4", "2", False, [A], [B]), V(B, "3", "2")]])
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "2", False), V(B, "5", "2", False)]])
    await a.send_dtmf("*1")
    await run.wait_event("MixMonitorStart")
    await run.checkpoint("recording", [[V(A, "5", recording=True), V(B, "5", recording=False)]])
    await a.send_dtmf("*1")
    await run.wait_event("MixMonitorStop")
    await run.checkpoint("stopped", [[V(A, "5", recording=False), V(B, "5")]])
    await b.hangup()
    await a.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def ext_to_public(run: Run) -> None:
    """An extension calls a public number that answers and plays audio."""
    a = await run.phone(A)
    await a.dial("7778888")
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "4", False, [A], ["7778888"])]])
    await a.hangup()
    await a.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def public_to_ext(run: Run) -> None:
    """The public network calls an extension through the trunk."""
    a = await run.phone(A)
    pstn = await run.phone(CARRIER, carrier=True)
    await pstn.dial(A)
    await a.wait_event("CALL_INCOMING")
    await run.checkpoint("ringing", [[V(A, "3", "8", False, [CARRIER], [A])]])
    await a.accept()
    await pstn.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "8", False, [CARRIER], [A])]])
    await pstn.hangup()
    await a.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def unanswered(run: Run) -> None:
    """A calls B, B rings, A gives up."""
    a, b = await run.phone(A), await run.phone(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await run.checkpoint("ringing", [[V(A, "4", "2"), V(B, "3", "2")]])
    await a.hangup()
    await b.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def busy(run: Run) -> None:
    """A calls B, B rejects the call (486 Busy Here): one call with both views while B
    rings, then nothing (no view left behind by the rejection)."""
    a, b = await run.phone(A), await run.phone(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await run.checkpoint("ringing", [[V(A, "4", "2"), V(B, "3", "2")]])
    await b.hangup()
    await run.wait_event("DialEnd", DialStatus="BUSY")
    await a.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def hold(run: Run) -> None:
    """A calls B, A puts B on hold, B hangs up."""
    a, b = await run.phone(A), await run.phone(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "2"), V(B, "5", "2")]])
    await a.command("hold")
    await run.wait_event("Hold")
    held = {"onHold": True, "holder": A}  # the same as OnHold from the API shows
    await run.checkpoint("held", [[V(A, "5", "2", call_control=held),
                                   V(B, "5", "2", call_control=held)]])
    # baresip 1.1 hangs on "resume" after "hold"; the held call is ended by B instead.
    await b.hangup()
    await run.settle()
    await run.checkpoint("ended", [])


async def blind_transfer(run: Run) -> None:
    """A calls B; B transfers A to C with a SIP REFER; C answers."""
    a, b, c = await run.phone(A), await run.phone(B), await run.phone(C)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "2"), V(B, "5", "2")]])
    await b.transfer(C)
    await c.wait_event("CALL_INCOMING")
    await c.accept()
    await c.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("transferred", [[V(A, "5", "2"), V(C, "5", "2")]])
    await a.hangup()
    await c.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def attended_transfer(run: Run) -> None:
    """A calls B; B consults C with Asterisk's *2 (atxfer), C answers, B hangs up, and
    A and C are left talking."""
    a, b, c = await run.phone(A), await run.phone(B), await run.phone(C)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.settle()
    await b.send_dtmf("*2")
    await asyncio.sleep(0.5)
    await b.send_dtmf(C + "#")
    await c.wait_event("CALL_INCOMING", timeout=20)
    await c.accept()
    await c.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("consulting", [[V(A, "5", "2"), V(B, "5", "2"), V(C, "5", "2")]])
    await b.hangup()
    await run.wait_event("AttendedTransfer")
    await run.checkpoint("transferred", [[V(A, "5", "2"), V(C, "5", "2")]])
    await a.hangup()
    await c.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


def _channel_of(run: Run, extension: str) -> dict[str, str]:
    """The latest Newchannel of the extension's device (its full name and Uniqueid)."""
    news = [e for e in run.log.matching("Newchannel")
            if e.get("Channel", "").startswith(f"PJSIP/{extension}-")]
    assert news, f"no channel of {extension}"
    return news[-1]


async def api_transfer(run: Run) -> None:
    """A calls B; A records (*1); the bridge's Transfer of B's view to C (the very AMI
    BlindTransfer pbx_bridge/callcontrol sends); C answers: A and C talk, A still records."""
    run.sandbox.cli(f"database put pbx_bridge/rec {A} wav,3,{A}")
    a, b, c = await run.phone(A), await run.phone(B), await run.phone(C)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await a.send_dtmf("*1")
    await run.wait_event("MixMonitorStart")
    await run.checkpoint("recording", [[V(A, "5", "2", True), V(B, "5", "2", False)]])
    headers = pbxcalls.blind_transfer_headers(
        _channel_of(run, B)["Channel"], pbxcalls.DIAL_CONTEXT, C)
    resp = await run.client.send_action("BlindTransfer", headers)
    assert resp.get("Response") == "Success", resp
    await c.wait_event("CALL_INCOMING")
    await c.accept()
    await c.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("transferred", [[V(A, "5", "2", True), V(C, "5", "2", False)]])
    await a.hangup()
    await c.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def barge_in(run: Run) -> None:
    """A calls B; the bridge's BargeIn on A's view calls C (the very Originate of
    ChanSpy pbx_bridge/callcontrol sends); C answers and is heard by both; A hangs up and
    the spy ends with the spied channel. The spy's call is C's own call, apart."""
    a, b, c = await run.phone(A), await run.phone(B), await run.phone(C)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("answered", [[V(A, "5", "2"), V(B, "5", "2")]])
    headers = pbxcalls.originate_headers(
        C, application="ChanSpy",
        data=chanspy_data(_channel_of(run, A)["Uniqueid"], "BargeIn"),
        caller_id=f"BargeIn <{A}>", timeout_s=25, tag="BargeIn|capture|01")
    resp = await run.client.send_action("Originate", headers)
    assert resp.get("Response") == "Success", resp
    await c.wait_event("CALL_INCOMING")
    await c.accept()
    await c.wait_event("CALL_ESTABLISHED")
    await run.wait_event("ChanSpyStart")
    await run.checkpoint("barging", [[V(A, "5", "2"), V(B, "5", "2")], [V(C, "5")]])
    await a.hangup()
    await b.wait_event("CALL_CLOSED")
    await c.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def local_optimized(run: Run) -> None:
    """A calls a number that reaches B through a Local channel, optimized away once up."""
    run.sandbox.cli("database deltree pbx_bridge")
    a, b = await run.phone(A), await run.phone(B)
    await a.dial("0003*299")
    await b.wait_event("CALL_INCOMING")
    await run.checkpoint("ringing", [[V(A, "4", "2", destination=["0003*299"]), V(B, "3", "2")]])
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.wait_event("LocalOptimizationEnd")
    await run.checkpoint("optimized", [[V(A, "5", "2"), V(B, "5", "2")]])
    await a.send_dtmf("*1")  # A's policy is absent here: *1 must be refused, nothing records
    await run.checkpoint("refused", [[V(A, "5", recording=False), V(B, "5", recording=False)]])
    await b.hangup()
    await a.wait_event("CALL_CLOSED")
    await run.checkpoint("ended", [])


async def same_extension_two_calls(run: Run) -> None:
    """A is on a call with a public number and takes a second call from the trunk."""
    a = await run.phone(A)
    pstn = await run.phone(CARRIER, carrier=True)
    await a.dial("7778888")
    await a.wait_event("CALL_ESTABLISHED")
    await pstn.dial(A)
    await a.wait_event("CALL_INCOMING")
    await a.accept()
    await pstn.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("two calls", [[V(A, flow="4")], [V(A, "5", "8", source=[CARRIER])]])
    await pstn.hangup()
    await run.settle()
    await run.checkpoint("one left", [[V(A, flow="4")]])
    # baresip has no current call any more (the first is held): the PBX hangs it up.
    await asyncio.to_thread(run.sandbox.cli, "channel request hangup all")
    await run.settle()
    await run.checkpoint("ended", [])


async def _a_talks_to_b(run: Run) -> tuple[Phone, Phone, dict[str, str], dict[str, str]]:
    """A calls B, B answers: the phones and A's and B's channels as Asterisk lists them."""
    a, b = await run.phone(A), await run.phone(B)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    cp = await run.checkpoint("answered", [[V(A, "5", "2", call_control={}),
                                            V(B, "5", "2", call_control={})]])
    a_ch, b_ch = (next(c for c in cp.asterisk if c["Channel"].startswith(f"PJSIP/{e}-"))
                  for e in (A, B))
    return a, b, a_ch, b_ch


async def api_hold(run: Run) -> None:
    """A calls B; A's OnHold (the bridge's AMI actions), OffHold; B hangs up."""
    _a, b, a_ch, b_ch = await _a_talks_to_b(run)
    peer = await holding_pbx.bridge_peer(run.client, a_ch["Channel"])
    assert peer == b_ch["Channel"], peer
    await holding_pbx.put_on_hold(run.client, a_ch["Channel"], peer)
    await run.wait_event("MusicOnHoldStart")
    held = {"onHold": True, "holder": A}
    await run.checkpoint("held", [[V(A, "5", "2", call_control=held),
                                   V(B, "5", "2", call_control=held)]])
    await holding_pbx.take_off_hold(run.client, a_ch["Channel"], peer)
    await run.wait_event("MusicOnHoldStop")
    await run.checkpoint("resumed", [[V(A, "5", "2", call_control={}),
                                      V(B, "5", "2", call_control={})]])
    await b.hangup()
    await run.settle()
    await run.checkpoint("ended", [])


async def park_timeout(run: Run) -> None:
    """A calls B; A parks B for 10 s (A's phone leaves the call); the lot rings A again,
    A answers; B hangs up."""
    a, b, a_ch, b_ch = await _a_talks_to_b(run)
    await holding_pbx.park(run.client, b_ch["Channel"], a_ch["Channel"], 10, "default")
    await run.wait_event("ParkedCall")
    await a.wait_event("CALL_CLOSED")
    parked = {"parked": True, "parkedPos": "701", "parkedBy": A}
    await run.checkpoint("parked", [[V(A, "5", call_control=parked),
                                     V(B, "5", "2", call_control=parked)]])
    await run.wait_event("ParkedCallTimeOut")
    await a.wait_event("CALL_INCOMING")
    await run.checkpoint("rings the parker", [[V(A, "3", call_control={"ringing": True}),
                                               V(B, "5", call_control={})]])
    await a.accept()
    await a.wait_event("CALL_ESTABLISHED")
    await run.checkpoint("back", [[V(A, "5", call_control={}), V(B, "5", call_control={})]])
    await b.hangup()
    await run.settle()
    await run.checkpoint("ended", [])


async def park_retrieve(run: Run) -> None:
    """A calls B; A parks B; C dials the parking space and talks to B; C hangs up."""
    c = await run.phone(C)
    a, _b, a_ch, b_ch = await _a_talks_to_b(run)
    await holding_pbx.park(run.client, b_ch["Channel"], a_ch["Channel"], 60, "default")
    await run.wait_event("ParkedCall")
    await a.wait_event("CALL_CLOSED")  # A hears the space announced, then leaves
    parked = {"parked": True, "parkedPos": "701", "parkedBy": A}
    await run.checkpoint("parked", [[V(A, "5", call_control=parked),
                                     V(B, "5", "2", call_control=parked)]])
    await c.dial("701")
    await c.wait_event("CALL_ESTABLISHED")
    await run.wait_event("UnParkedCall")
    await run.checkpoint("retrieved", [[V(B, "5", call_control={}),
                                        V(C, "5", call_control={})]])
    await c.hangup()
    await run.settle()
    await run.checkpoint("ended", [])


SCENARIOS: dict[str, Callable[[Run], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        a_calls_b,
        ext_to_public,
        public_to_ext,
        unanswered,
        busy,
        hold,
        blind_transfer,
        attended_transfer,
        local_optimized,
        same_extension_two_calls,
        api_hold,
        park_timeout,
        park_retrieve,
        api_transfer,
        barge_in,
    )
}
