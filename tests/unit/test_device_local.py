"""Local devices in the directory (``Local/<exten>@<context>``), as the benchmarks use:
both halves of such a Local channel belong to the extension."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pbx_bridge.calls.tracker import Tracker, device_of
from pbx_bridge.directory.models import DirectoryFile, Extension, device_of_channel

LOCAL = "Local/600@from-internal"


@pytest.mark.parametrize(
    "device", [LOCAL, "Local/0003*210@bench-sim", "Local/s@ctx_1.x+y", "PJSIP/0003*210"]
)
def test_local_devices_are_accepted(device: str) -> None:
    assert Extension(number="0009*600", owner=1, device=device).device == device


@pytest.mark.parametrize(
    "device",
    [
        "Local/600@",
        "Local/@ctx",
        "Local/600@ctx;1",
        "Local/600@ctx-00000001;2",
        "Local/600@a@b",
        "Local/600@ctx x",
        "Local/600@ctx\n",
        "Local/600@ctx\r\nAction: Originate",
        "Local/600@" + "c" * 65,
    ],
)
def test_malformed_local_devices_are_refused(device: str) -> None:
    with pytest.raises(ValidationError):
        Extension(number="0009*600", owner=1, device=device)


def test_directory_file_with_a_local_device() -> None:
    data = DirectoryFile.model_validate(
        {
            "organizations": [{"id": 9, "name": "Bench", "code": "0009"}],
            "users": [{"id": 90, "name": "Bench", "role": "user", "organization": 9}],
            "extensions": [{"number": "0009*600", "owner": 90, "device": LOCAL}],
        }
    )
    assert data.extensions[0].device == LOCAL


@pytest.mark.parametrize("half", ["1", "2"])
def test_channel_to_device_for_both_halves(half: str) -> None:
    channel = f"Local/600@from-internal-0000001a;{half}"
    assert device_of_channel(channel) == LOCAL
    assert device_of(channel) == LOCAL  # the tracker's own derivation agrees


def test_tracker_records_the_second_half_of_a_local_device() -> None:
    tracker = Tracker({LOCAL: "0009*600"})
    for uid, half, state in (("1795851464.0", "1", "6"), ("1795851464.1", "2", "6")):
        tracker.feed(
            {
                "Event": "Newchannel",
                "Channel": f"{LOCAL}-00000000;{half}",
                "ChannelState": state,
                "Uniqueid": uid,
                "Linkedid": "1795851464.0",
                "Timestamp": "1795851464.5",
            }
        )
    (call,) = tracker.calls_of("0009*600")
    assert call.view_ids == {"0009*600": "01"}
    assert tracker.recording_channel(call, "0009*600").name == f"{LOCAL}-00000000;2"
