"""The recording policy the bridge writes to AstDB for the dialplan's [pbx-bridge-rec]:
on-demand and "always" extensions alike, told apart by the trigger field; and the
difference that turns what AstDB holds into it (issue 16: only what changed is written)."""

from __future__ import annotations

import pytest

from pbx_bridge.recording.astdb import diff_policy, expected_policy, policy_value, tree_of
from tests.unit.api_support import make_directory, make_settings


def test_the_value_keeps_the_first_three_fields_and_adds_the_trigger() -> None:
    assert policy_value("wav", 3, "0003*213", "always") == "wav,3,0003*213,always"
    assert policy_value("wav49", 4, "0004*210", "star1") == "wav49,4,0004*210,star1"
    with pytest.raises(ValueError):
        policy_value("wav", 3, "0003*213", "sometimes")


def test_always_and_on_demand_extensions_are_wanted(tmp_path) -> None:
    directory = make_directory(make_settings(tmp_path))
    want = expected_policy(directory, "")
    assert want["rec/0003*213"] == "wav,3,0003*213,always"  # Jane: always
    assert want["rec/0004*210"].endswith(",0004*210,star1")
    assert "rec/0003*212" not in want  # recording off: nothing, *1 is denied
    assert "config/recdir" not in want
    assert expected_policy(directory, "/srv/rec")["config/recdir"] == "/srv/rec"


def test_equal_trees_need_nothing() -> None:
    same = {"config/recdir": "/r", "rec/0003*210": "wav,3,0003*210,star1"}
    assert diff_policy(same, dict(same)) == ({}, [])


def test_only_changed_and_new_keys_are_written_and_gone_ones_deleted() -> None:
    have = {
        "rec/0003*210": "wav,3,0003*210,star1",  # unchanged
        "rec/0003*211": "wav,3,0003*211,star1",  # becomes "always"
        "rec/0003*212": "wav,3,0003*212,star1",  # no longer records
        "config/recdir": "/old",  # no recordings.directory any more
    }
    want = {
        "rec/0003*210": "wav,3,0003*210,star1",
        "rec/0003*211": "wav,3,0003*211,always",
        "rec/0003*214": "gsm,3,0003*214,star1",  # a new extension
    }
    puts, deletes = diff_policy(have, want)
    assert puts == {"rec/0003*211": "wav,3,0003*211,always",
                    "rec/0003*214": "gsm,3,0003*214,star1"}
    assert deletes == ["config/recdir", "rec/0003*212"]


def test_an_empty_astdb_gets_everything_and_an_empty_policy_deletes_everything() -> None:
    want = {"rec/a": "1", "rec/b": "2"}
    assert diff_policy({}, want) == (want, [])
    assert diff_policy(want, {}) == ({}, ["rec/a", "rec/b"])


def test_the_tree_is_read_from_dbgettree_rows_of_the_family_only() -> None:
    rows = [
        {"Event": "DBGetTreeResponse", "Key": "/pbx_bridge/rec/0003*210", "Val": "wav,3,x,star1"},
        {"Event": "DBGetTreeResponse", "Key": "/pbx_bridge/config/recdir", "Val": ""},
        {"Event": "DBGetTreeResponse", "Key": "/pbx_bridgeX/rec/a", "Val": "no"},  # not ours
        {"Event": "DBGetTreeComplete", "EventList": "Complete", "ListItems": "2"},
    ]
    assert tree_of(rows, "pbx_bridge") == {"rec/0003*210": "wav,3,x,star1", "config/recdir": ""}
