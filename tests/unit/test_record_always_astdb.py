"""The recording policy the bridge writes to AstDB for the dialplan's [pbx-bridge-rec]:
on-demand and "always" extensions alike, told apart by the trigger field."""

from __future__ import annotations

import pytest

from pbx_bridge.pbx.ami import AmiClient
from pbx_bridge.recording.astdb import policy_value, sync_policy
from tests.fakeami import FakeAmi
from tests.unit.api_support import make_directory, make_settings


def test_the_value_keeps_the_first_three_fields_and_adds_the_trigger() -> None:
    assert policy_value("wav", 3, "0003*213", "always") == "wav,3,0003*213,always"
    assert policy_value("wav49", 4, "0004*210", "star1") == "wav49,4,0004*210,star1"
    with pytest.raises(ValueError):
        policy_value("wav", 3, "0003*213", "sometimes")


async def test_always_and_on_demand_extensions_are_written(tmp_path) -> None:
    fake = FakeAmi(username="pbx-bridge", secret="test-secret")
    await fake.start()
    try:
        directory = make_directory(make_settings(tmp_path))
        ami = AmiClient("127.0.0.1", fake.port, "pbx-bridge", "test-secret")
        await ami.start()
        await ami.wait_connected(5.0)
        try:
            await sync_policy(ami, directory, "")
        finally:
            await ami.close()
        put = {a["Key"]: a["Val"] for a in fake.actions_named("DBPut")}
        assert put["rec/0003*213"] == "wav,3,0003*213,always"  # Jane: always
        assert put["rec/0004*210"].endswith(",0004*210,star1")
        assert "rec/0003*212" not in put  # recording off: nothing, *1 is denied
    finally:
        await fake.close()
