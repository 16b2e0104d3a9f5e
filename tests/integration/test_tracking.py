"""The tracker against the real Asterisk: every scenario, live, compared at each
checkpoint with Asterisk's own channel list and with the views a user should see."""

from __future__ import annotations

import pytest

from pbx_bridge.replay import ReplayTracker
from tests.support.scenarios import DEVICES, SCENARIOS, Checkpoint, Run, compare


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_tracker_follows_asterisk(name, pbx, phones, ami_log) -> None:
    client = ami_log.client
    tracker = ReplayTracker(DEVICES)
    client.add_event_handler(tracker.feed)
    _, items = await client.send_list_action("CoreShowChannels")
    tracker.resync(items)

    problems: list[str] = []

    def check(cp: Checkpoint) -> None:
        problems.extend(compare(tracker, cp))

    run = Run(pbx, phones, client, ami_log)
    run.on_checkpoint = check
    await SCENARIOS[name](run)
    assert run.checkpoints, "the scenario declared no checkpoint"
    assert not problems, "\n".join(problems)
    assert not tracker.calls, "calls left after every channel hung up"
