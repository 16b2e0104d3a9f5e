"""Contract items nothing else pinned down (issue 9, item 17): the recording path's date
and time parts, its base directory and its path-safety guard; the view statuses 0, 1 and
2; `pbx-bridge replay` itself, run as users run it, against captured transcripts."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbx_bridge.calls.render import render_call
from pbx_bridge.calls.tracker import Tracker
from pbx_bridge.recording.naming import recording_path
from tests.support.scenarios import DEVICES, Checkpoint

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
# 2026-11-30 23:59:59.9 UTC: a fraction that must not round into the next day.
LATE = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp() + 0.9


def _path(**kw: object) -> str:
    args: dict = {"organization_id": 3, "extension": "0003*210",
                  "call_id": "b817d2618fe6f1804333", "view_id": "01", "fmt": "wav",
                  "started": LATE}
    return recording_path(**{**args, **kw})


# --------------------------------------------------------------------- recording path
def test_recording_path_has_the_utc_date_and_start_second() -> None:
    assert _path() == "3/0003*210/2026-11-30/b817d2618fe6f1804333-01-235959.wav"
    assert _path(fmt="wav49").endswith("-235959.WAV")  # upper case: GSM (contract §2)
    assert _path(started=LATE + 0.2).split("/")[2:] == [
        "2026-12-01", "b817d2618fe6f1804333-01-000000.wav"]


def test_recording_path_under_the_configured_directory() -> None:
    want = "/srv/rec/3/0003*210/2026-11-30/b817d2618fe6f1804333-01-235959.wav"
    assert _path(base_dir="/srv/rec") == want
    assert _path(base_dir="/srv/rec/") == want


@pytest.mark.parametrize("field", ["extension", "call_id", "view_id"])
@pytest.mark.parametrize("value", ["..", ".", "../etc", "a/b", "", "x\r\nAction: x",
                                   "x" * 65, "0003*210 ", "é"])
def test_recording_path_refuses_unsafe_segments(field: str, value: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        _path(**{field: value})


def test_recording_path_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="format"):
        _path(fmt="mp3")


# ----------------------------------------------------------------- statuses 0, 1, 2
def _one_channel(state: int, desc: str) -> str:
    tracker = Tracker(DEVICES)
    tracker.feed({
        "Event": "Newchannel", "Channel": "PJSIP/0003*210-00000001",
        "ChannelState": str(state), "ChannelStateDesc": desc, "CallerIDNum": "0003*210",
        "CallerIDName": "John Doe", "Exten": "7778888", "Context": "from-internal",
        "Uniqueid": "1795849232.1", "Linkedid": "1795849232.1",
        "Timestamp": "1795849232.000000",
    })
    (call,) = tracker.calls.values()
    (view,) = render_call(tracker, call, "0003*210")["phoneCallView"]
    return view["status"]


@pytest.mark.parametrize(("state", "desc", "status"), [
    (0, "Down", "2"),  # being set up: trying
    (9, "Pre-ring", "2"),
    (4, "Ring", "2"),  # dialling, nothing rings yet: trying
    (1, "Rsrvd", "1"),  # Asterisk's off-hook family: off hook
    (2, "OffHook", "1"),
    (3, "Dialing", "1"),
    (8, "Dialing Offhook", "1"),
    (7, "Busy", "0"),  # no VoipNow status says busy: unknown
    (10, "Unknown", "0"),
])
def test_view_status_for_every_asterisk_channel_state(state: int, desc: str,
                                                     status: str) -> None:
    assert _one_channel(state, desc) == status


# ------------------------------------------------------------------- pbx-bridge replay
def _replay(*args: str) -> str:
    exe = Path(sys.executable).with_name("pbx-bridge")  # the installed console script
    proc = subprocess.run([str(exe), "replay", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", ["a_calls_b", "ext_to_public", "busy", "blind_transfer"])
def test_replay_traces_the_views_asterisk_showed(name: str) -> None:
    """`pbx-bridge replay --trace` on a captured transcript: after the event of each
    checkpoint, the calls it prints have the views the scenario declared there."""
    lines = [json.loads(x) for x in _replay(str(FIXTURES / f"{name}.jsonl"), "--directory",
                                           str(REPO / "config" / "directory.example.toml"),
                                           "--trace").splitlines()]
    assert [x["event"] for x in lines] == list(range(1, len(lines) + 1))
    checkpoints = [Checkpoint.from_json(c) for c in
                   json.loads((FIXTURES / f"{name}.checkpoints.json").read_text())]
    for cp in checkpoints:
        calls = lines[cp.event_index - 1]["calls"] if cp.event_index else []
        assert len(calls) == len(cp.expected), (cp.label, calls)
        for call, expected in zip(calls, cp.expected, strict=True):
            views = call["phoneCallView"]
            assert [v["extension"] for v in views] == [v.extension for v in expected]
            for view, want in zip(views, expected, strict=True):
                for key in ("status", "flow"):  # None: the scenario does not say
                    if getattr(want, key) is not None:
                        assert view[key] == getattr(want, key), (cp.label, view)


def test_replay_prints_the_calls_live_at_the_end(tmp_path: Path) -> None:
    """Without --trace: one JSON document, the calls still live after the last event
    (a transcript cut mid-call shows that call; a finished one shows none)."""
    events = (FIXTURES / "a_calls_b.jsonl").read_text().splitlines()
    cp = json.loads((FIXTURES / "a_calls_b.checkpoints.json").read_text())[0]
    assert cp["expected"], cp
    assert json.loads(_replay(str(FIXTURES / "a_calls_b.jsonl"))) == []
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(events[: cp["event_index"]]) + "\n")
    (call,) = json.loads(_replay(str(cut)))
    assert [v["extension"] for v in call["phoneCallView"]] == \
        [v["extension"] for v in cp["expected"][0]]
    assert call["id"] and call["published"]
