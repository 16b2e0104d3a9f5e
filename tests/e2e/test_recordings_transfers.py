"""Recordings through transfers, with real baresip phones on the real Asterisk (issue 11
item 6). A calls B, both recorded through the API; B hands A over to Jane, whose
extension records "always":

- B's recording ends when B leaves, and its row says so: `reason: transferred`,
  `stopped` at the transfer; its file holds A and B up to there;
- A's recording is A's channel's: it goes on through the transfer and holds Jane after it;
- Jane's new leg is recorded (the dialplan's "always", started when she answers);
- both directions stay in every recording: Asterisk 22 often stops feeding a recorded
  channel's MixMonitor the audio sent to it once the channel gets a new peer
  (asterisk/asterisk#507, #851), so the bridge re-arms the run onto its own file
  (recording/rearm.py): each row stays one row, one file, and Asterisk's own
  MixMonitorStart events show the re-arms (same file).

Blind: B's phone transfers with a SIP REFER (baresip 1.1 `transfer`). Attended: baresip 1.1
has no attended transfer, so B uses Asterisk's own feature code `*2` (features.conf
atxfer; AMI `Atxfer` sends the very same code), consults Jane, and hangs up."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from tests.e2e.recordings_support import finished_row, media, stretch
from tests.e2e.test_api_recording import _one_call, _serve
from tests.support.audio import assert_no_tone, assert_tone, inspect_wav
from tests.support.bridge import eventually

A, B, JANE = "0003*210", "0003*211", "0003*213"
A_HZ, B_HZ, JANE_HZ = 600, 800, 1000


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _call_with_both_recorded(api, phones) -> tuple[object, object, object, dict]:
    a = await phones(A, tone_hz=A_HZ)
    b = await phones(B, tone_hz=B_HZ)
    jane = await phones(JANE, tone_hz=JANE_HZ, auto_answer=True)
    await a.dial(B)
    await b.wait_event("CALL_INCOMING")
    await b.accept()
    await a.wait_event("CALL_ESTABLISHED")
    call = await _one_call(api, B)
    for view in call["phoneCallView"]:  # John owns A and B: one token for both views
        body = {"action": "StartRecording", "format": "wav", "phoneCallViewId": view["id"]}
        status, answer = await api.put(call["id"], body, view["extension"])
        assert status == 200, answer
    await eventually(lambda: len([c for c in api.bridge.tracker.channels.values()
                                  if c.rec_id]) == 2, what="both recordings catalogued")
    return a, b, jane, call


async def _file(api, tmp_path: Path, row: dict, token: str | None = None) -> Path:
    path = tmp_path / f"{row['id']}.wav"
    path.write_bytes(await media(api, row, token))
    return path


async def _check(api, tmp_path: Path, transferred_at: float, *, consulted: bool) -> None:
    """The three rows and their files, as the module says. `consulted`: B talked to
    Jane (attended transfer) during the last two seconds before the transfer."""
    b_row = await finished_row(api, B)
    assert (b_row["state"], b_row["reason"]) == ("completed", "transferred"), b_row
    # (ISO times are whole seconds)
    assert -1 < _epoch(b_row["stopped"]) - transferred_at < 2, (b_row, transferred_at)
    b = inspect_wav(await _file(api, tmp_path, b_row))
    cut = transferred_at - _epoch(b_row["started"])
    assert b.duration <= cut + 1.0, (b.duration, cut)  # nothing after B left
    assert_tone(b.samples, B_HZ, "B's own side")
    assert_tone(stretch(b.samples, 0.3, 1.5), A_HZ, "A, before the transfer")
    if consulted:
        # The file ends when B left, right after 2 s with Jane (file time: the ISO
        # `started` is whole seconds, and a re-arm leaves out a fraction of a second).
        assert_tone(stretch(b.samples, b.duration - 1.6, b.duration - 0.3), JANE_HZ,
                    "Jane, consulted")
    else:
        assert_no_tone(b.samples, JANE_HZ, "Jane in B's recording")

    a_row = await finished_row(api, A)
    assert a_row["state"] == "completed" and "reason" not in a_row, a_row
    a = inspect_wav(await _file(api, tmp_path, a_row))
    cut = transferred_at - _epoch(a_row["started"])
    # It went on after the transfer (3 s with Jane; a re-arm leaves out ~0.3 s).
    assert a.duration > cut + 1.5, (a.duration, cut)
    assert_tone(a.samples, A_HZ, "A's own side, throughout")
    assert_tone(stretch(a.samples, 0.3, 1.5), B_HZ, "B, before the transfer")
    assert_tone(stretch(a.samples, cut + 1.2), JANE_HZ, "Jane, after the transfer")
    assert_no_tone(stretch(a.samples, cut + 1.2), B_HZ, "B, after the transfer")

    jane_token = api.token_for(13)
    j_row = await finished_row(api, JANE, jane_token)
    assert (j_row["startedBy"], j_row["state"]) == ("always", "completed"), j_row
    j = inspect_wav(await _file(api, tmp_path, j_row, jane_token))
    cut = transferred_at - _epoch(j_row["started"])
    assert_tone(j.samples, JANE_HZ, "Jane's own side")
    assert_tone(stretch(j.samples, max(cut, 0.0) + 1.2), A_HZ, "A, once handed to Jane")
    if consulted:
        # Her file starts when she answers, and B talks to her for 2 s from then.
        assert_tone(stretch(j.samples, 0.5, 1.5), B_HZ, "B, consulting Jane")


def _rearmed(ami_log, ext: str) -> int:
    """How many times Asterisk started the extension's MixMonitor again (its own
    MixMonitorStart events), checked to be onto the one file of its first start."""
    starts = ami_log.matching("MixMonitorStart")
    files = {e.get("MIXMONITOR_FILENAME") for e in starts
             if e.get("Channel", "").startswith(f"PJSIP/{ext}-")}
    assert len(files) == 1, (ext, files)
    return len([e for e in starts if e.get("Channel", "").startswith(f"PJSIP/{ext}-")]) - 1


async def test_a_blind_transfer(pbx, phones, tmp_path, ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        a, b, jane, _ = await _call_with_both_recorded(api, phones)
        await asyncio.sleep(2.0)
        await b.transfer(JANE)
        transfer = await ami_log.wait_for("BlindTransfer")
        await jane.wait_event("CALL_ESTABLISHED")
        await asyncio.sleep(3.0)
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        assert transfer["Result"] == "Success", transfer
        await _check(api, tmp_path, float(transfer["Timestamp"]), consulted=False)
        # A got a new peer (Jane): re-armed; B left; Jane's first peer is A.
        assert (_rearmed(ami_log, A), _rearmed(ami_log, B)) == (1, 0)


async def test_an_attended_transfer(pbx, phones, tmp_path, ami_log) -> None:
    async for api in _serve(pbx, tmp_path):
        a, b, jane, _ = await _call_with_both_recorded(api, phones)
        await asyncio.sleep(2.0)
        await b.send_dtmf("*2")
        await asyncio.sleep(0.5)
        await b.send_dtmf(JANE + "#")
        await jane.wait_event("CALL_ESTABLISHED", timeout=20)
        await asyncio.sleep(2.0)  # B consults Jane (A is held), then hands A over
        await b.hangup()
        transfer = await ami_log.wait_for("AttendedTransfer")
        await asyncio.sleep(3.0)
        await a.hangup()
        await eventually(lambda a=api: not a.bridge.tracker.calls, what="call gone")
        assert transfer["Result"] == "Success", transfer
        await _check(api, tmp_path, float(transfer["Timestamp"]), consulted=True)
        # B (its consultation), A and Jane (each other) got new peers: all re-armed.
        assert min(_rearmed(ami_log, ext) for ext in (A, B, JANE)) >= 1
