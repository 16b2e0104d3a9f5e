"""schemathesis against the running server (a bridge on the real Asterisk, live calls up),
long enough for thousands of generated requests: no 5xx, every response matching the
OpenAPI document. The short variant, run by default, is
tests/integration/test_openapi_live.py.

    PBX_BRIDGE_SCHEMATHESIS_SOAK_EXAMPLES   cases per operation (default 1000)
    PBX_BRIDGE_SCHEMATHESIS_SOAK_SECONDS    time budget of the fuzzing phases (default 300)
    PBX_BRIDGE_SCHEMATHESIS_SOAK_MIN        requests the run must reach (default 5000)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from pbx_bridge.calls.tracker import call_id
from tests.reliability.support import ADMIN, Calls, env_int, report, serve, wait_consistent
from tests.support.metrics import requests_served

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_schemathesis_soak(pbx, observer, tmp_path) -> None:
    examples = env_int("PBX_BRIDGE_SCHEMATHESIS_SOAK_EXAMPLES", 1000)
    seconds = env_int("PBX_BRIDGE_SCHEMATHESIS_SOAK_SECONDS", 300)
    minimum = env_int("PBX_BRIDGE_SCHEMATHESIS_SOAK_MIN", 5000)
    calls = Calls(pbx, observer.client, observer)
    try:
        async with serve(pbx, tmp_path) as api:
            await calls.add_phones(1)
            live = await calls.start_many(["0003*210", "0003*211", "0004*210"])
            await wait_consistent(api.bridge, observer.client)
            token = api.token(ADMIN)  # sees everything, so the live calls are reachable
            # Real ids in the examples: GET one / PUT reach live calls, not only 400s.
            ids = ",".join(call_id(c.uniqueid) for c in live)
            proc = await asyncio.create_subprocess_exec(
                str(SCHEMATHESIS), "run", f"{api.base}/uapi/openapi.json",
                "--checks", "all",
                "--exclude-checks", "positive_data_acceptance",
                # The event stream never ends (tests/unit/test_event_stream.py covers it).
                "--exclude-operation-id", "streamEvents",
                "-H", f"Authorization: Bearer {token}",
                "-n", str(examples), "--max-time", str(seconds),
                "--seed", "20261128", "--no-shrink",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path,
            )
            out, _ = await proc.communicate()
            text = out.decode(errors="replace")
            (tmp_path / "schemathesis.out").write_text(text)
            assert proc.returncode == 0, text[-4000:]
            r = await api.request("GET", "/metrics", user=ADMIN)  # [metrics] auth = "admin"
            served, by_status = requests_served(r.text)
            fivexx = {s: n for s, n in by_status.items() if s.startswith("5")}
            assert not fivexx, f"5xx answers: {fivexx}"
            assert served >= minimum, f"only {served:.0f} requests reached the server"
            await wait_consistent(api.bridge, observer.client)
            summary_line = next((ln for ln in text.splitlines()[::-1]
                                 if "passed" in ln or "generated" in ln), "")
            report("schemathesis_soak", requests=int(served), by_status=by_status,
                   examples_per_operation=examples, max_time_s=seconds, call_ids=ids,
                   summary=summary_line.strip())
    finally:
        await calls.close()
