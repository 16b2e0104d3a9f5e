"""The bridge's "always" recording loop under injected faults (tests/fakeami.py stands in
for Asterisk only to refuse a MixMonitor; that recording works at all is proven on the
real Asterisk in tests/e2e/test_record_always.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pbx_bridge.directory.models import DirectoryFile, RecordingSetup
from pbx_bridge.server import Services
from tests.fakeami import FakeAmi, FakeConnection
from tests.unit.api_support import make_directory, make_settings

JANE = "0003*213"  # recording on, triggered always (config/directory.example.toml)
UID = "1795849232.7"
GRACE = 2.0  # recordings.always_grace
CALLEE = "1795849232.8"  # a called channel of the call UID (Dial's U() reaches it)


def _channel(event: str, name: str, uid: str, state: str) -> dict[str, str]:
    return {"Event": event, "Channel": name, "ChannelState": state, "CallerIDNum": JANE,
            "CallerIDName": "Jane", "Exten": "7778888", "Context": "from-internal",
            "Uniqueid": uid, "Linkedid": UID, "Timestamp": "1795849232.5"}


async def _no_channels(conn: FakeConnection, action: dict[str, str]) -> None:
    aid = action["ActionID"]
    await conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
    await conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                     "EventList": "Complete", "ListItems": "0"})


class RefuseFirst:
    """MixMonitor: an Error the first ``n`` times, then Success."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0

    async def __call__(self, conn: FakeConnection, action: dict[str, str]) -> None:
        self.seen += 1
        ok = self.seen > self.n
        # Asterisk 22 answers a started MixMonitor with the id its i() option stored.
        answer = {"Response": "Success", "ActionID": action["ActionID"],
                  "MixMonitorID": f"0x7f00000{self.seen:04x}"} if ok else {
                  "Response": "Error", "ActionID": action["ActionID"],
                  "Message": "Cannot start MixMonitor"}
        await conn.send(answer)


@pytest.fixture
async def rig(tmp_path, monkeypatch) -> AsyncIterator[tuple[Services, FakeAmi, RefuseFirst]]:
    fake = FakeAmi(username="pbx-bridge", secret="test-secret")
    refuse = RefuseFirst(2)
    fake.handlers["coreshowchannels"] = _no_channels
    fake.handlers["mixmonitor"] = refuse
    await fake.start()
    base = make_settings(tmp_path)
    settings = base.model_copy(update={
        "ami": base.ami.model_copy(update={"port": fake.port}),
        "recordings": base.recordings.model_copy(update={"always_retry_first": 0.05,
                                                         "always_grace": GRACE}),
    })
    bridge = Services(settings, make_directory(settings))
    await bridge.start()
    try:
        async with asyncio.timeout(5):
            while not bridge.ready:
                await asyncio.sleep(0.01)
        yield bridge, fake, refuse
    finally:
        await bridge.close()
        await fake.close()


async def _until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_refused_automatic_start_is_retried_until_it_runs(rig) -> None:
    bridge, fake, refuse = rig
    await fake.send_event(_channel("Newchannel", f"PJSIP/{JANE}-00000007", UID, "4"))
    await _until(lambda: bridge.tracker.channels)
    (ch,) = bridge.tracker.channels.values()
    await asyncio.sleep(0.1)
    assert not fake.actions_named("MixMonitor")  # ringing: nothing to record yet
    await fake.send_event(_channel("Newstate", f"PJSIP/{JANE}-00000007", UID, "6"))
    await _until(lambda: ch.recording is not None)
    assert refuse.seen == 3  # refused twice, then started
    # Every attempt reserved the view first and the refused ones released it again.
    rec = [a for a in fake.actions_named("Setvar") if a.get("Variable") == "PBX_REC"]
    assert [bool(a.get("Value")) for a in rec] == [True, False, True, False, True]
    await asyncio.sleep(0.3)
    assert refuse.seen == 3  # recording now: no more starts
    assert bridge.metrics.recordings_started == 1 and bridge.metrics.recordings_failed == 2


async def test_no_retry_once_the_channel_is_gone(rig) -> None:
    bridge, fake, refuse = rig
    refuse.n = 10**6
    await fake.send_event(_channel("Newchannel", f"PJSIP/{JANE}-00000007", UID, "6"))
    await _until(lambda: refuse.seen >= 1)
    await fake.send_event({**_channel("Hangup", f"PJSIP/{JANE}-00000007", UID, "6"),
                           "Cause": "16"})
    await _until(lambda: not bridge.tracker.channels)
    seen = refuse.seen
    await asyncio.sleep(0.5)  # several retry delays
    assert refuse.seen == seen


async def test_switching_a_setup_to_always_records_calls_already_up(rig) -> None:
    bridge, fake, refuse = rig
    refuse.n = 0
    await fake.send_event(_channel("Newchannel", "PJSIP/0003*212-00000009", "1795849232.9",
                                   "6") | {"Linkedid": "1795849232.9", "CallerIDNum": "0003*212"})
    await asyncio.sleep(0.2)
    assert refuse.seen == 0  # 0003*212: call recording off
    ext = bridge.directory.extension("0003*212")
    bridge.directory.load(DirectoryFile(extensions=[ext.model_copy(update={
        "recording": RecordingSetup(enabled=True, trigger="always", format="wav49")})]))
    bridge.reload_directory()
    await _until(lambda: refuse.seen == 1)
    (mixmonitor,) = fake.actions_named("MixMonitor")
    assert mixmonitor["File"].endswith(".WAV")  # the extension's own format: wav49


async def test_the_dialplans_recording_is_never_doubled(rig) -> None:
    """Dial's U(pbx-bridge-rec) starts "always" on the called channel at answer; its
    MixMonitorStart arrives within the grace and the bridge starts nothing: exactly one
    MixMonitor."""
    bridge, fake, refuse = rig
    refuse.n = 0
    await fake.send_event(_channel("Newchannel", f"PJSIP/{JANE}-00000008", CALLEE, "6"))
    await _until(lambda: bridge.tracker.channels)
    (ch,) = bridge.tracker.channels.values()
    await asyncio.sleep(0.05)
    assert not fake.actions_named("MixMonitor")  # within the grace: the dialplan's turn
    await fake.send_event(_channel("MixMonitorStart", f"PJSIP/{JANE}-00000008", CALLEE, "6")
                          | {"ChanVariable(PBX_REC)": "1795849233|3/0003*213/x-00-1.wav"})
    await _until(lambda: ch.recording is not None)
    await asyncio.sleep(GRACE + 1.0)  # past the grace
    assert not fake.actions_named("MixMonitor") and refuse.seen == 0
    assert ch.recording == 1795849233.0


async def test_a_view_the_dialplan_did_not_record_is_repaired_after_the_grace(rig) -> None:
    bridge, fake, refuse = rig
    refuse.n = 0
    await fake.send_event(_channel("Newchannel", f"PJSIP/{JANE}-00000008", CALLEE, "6"))
    await _until(lambda: bridge.tracker.channels)
    (ch,) = bridge.tracker.channels.values()
    await asyncio.sleep(0.1)
    assert refuse.seen == 0  # within the grace
    await _until(lambda: ch.recording is not None)  # no event needed after the grace
    assert refuse.seen == 1


async def test_the_calling_side_is_started_without_waiting(rig) -> None:
    """No Dial hook reaches the caller's channel at answer: the bridge records it at
    once, as before (the grace would lose the first seconds of the call)."""
    _bridge, fake, refuse = rig
    refuse.n = 0
    await fake.send_event(_channel("Newchannel", f"PJSIP/{JANE}-00000007", UID, "6"))
    await _until(lambda: refuse.seen == 1, timeout=GRACE * 0.75)  # before any grace
