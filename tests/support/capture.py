"""Capture the scenario transcripts the unit tier replays.

    .venv/bin/python -m tests.support.capture [SCENARIO ...]

Starts its own sandbox instance ("capture"), plays each scenario with real phones, and
writes tests/fixtures/<scenario>.jsonl (every AMI event, as received) and
tests/fixtures/<scenario>.checkpoints.json (Asterisk's channel list and the expected
views at each checkpoint)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from devtools.phones import Phone
from devtools.sandbox import Sandbox
from pbx_bridge.calls.transcript import write_events
from tests.support.pbx import EventLog, connect_ami, wait_no_channels
from tests.support.scenarios import SCENARIOS, Run

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


async def capture(sb: Sandbox, name: str) -> None:
    started: list[Phone] = []

    async def phone(user: str, *, carrier: bool = False, **kw: object) -> Phone:
        p = Phone.carrier(sb, user, **kw) if carrier else Phone(sb, user, **kw)
        await p.start()
        started.append(p)
        return p

    await asyncio.to_thread(sb.cli, "database deltree pbx_bridge")
    log = EventLog()
    client = await connect_ami(sb, log)
    try:
        run = Run(sb, phone, client, log)
        await SCENARIOS[name](run)
    finally:
        for p in started:
            await p.stop()
        await client.close()
    await wait_no_channels(sb)
    with open(FIXTURES / f"{name}.jsonl", "w") as out:
        write_events(log.events, out)
    (FIXTURES / f"{name}.checkpoints.json").write_text(
        json.dumps([cp.to_json() for cp in run.checkpoints], indent=1) + "\n"
    )
    print(f"{name}: {len(log.events)} events, {len(run.checkpoints)} checkpoints")


async def main(names: list[str]) -> int:
    sb = Sandbox(name=os.environ.get("PBX_BRIDGE_SANDBOX_NAME", "capture"))
    sb.stop()
    sb.start()
    try:
        for name in names or list(SCENARIOS):
            await capture(sb, name)
    finally:
        Phone.kill_stale(sb)
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
