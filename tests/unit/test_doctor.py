"""The doctor's pure parts: dialplan patterns and dial paths, GetConfig answers, folder
rights, and its module list kept in step with asterisk-conf/modules.conf."""

from __future__ import annotations

import os
import stat

from devtools.sandbox import DEFAULT_CONF_DIR
from pbx_bridge.doctor.dialplan import Step, dial_paths, dials_device, pattern_regex
from pbx_bridge.doctor.host_checks import writable_by
from pbx_bridge.doctor.pbx_checks import REQUIRED_MODULES
from pbx_bridge.doctor.probe import parse_config, values
from pbx_bridge.doctor.report import as_json, failed, passed
from tests.support.modules import marked_modules


def test_patterns_match_like_asterisk() -> None:
    assert pattern_regex("_XXXX*XXX").fullmatch("0003*210")
    assert not pattern_regex("_XXXX*XXX").fullmatch("0003*21")
    assert pattern_regex("_NXX").fullmatch("200") and not pattern_regex("_NXX").fullmatch("100")
    assert pattern_regex("_1[2-4]X.").fullmatch("1301")
    assert not pattern_regex("_1[2-4]X.").fullmatch("130")
    assert pattern_regex("0003*210").fullmatch("0003*210")
    assert not pattern_regex("0003*210").fullmatch("0003x210")


def _s(ctx: str, exten: str, prio: int, app: str, data: str) -> Step:
    return Step(ctx, exten, prio, app, data)


def test_a_dial_of_the_device_is_found_literally_or_through_exten() -> None:
    assert dials_device(_s("c", "_XXXX*XXX", 2, "Dial", "PJSIP/${EXTEN},60,tT"), "PJSIP/0003*210")
    assert dials_device(_s("c", "100", 1, "Dial", "SIP/x&PJSIP/0003*210,30"), "PJSIP/0003*210")
    assert not dials_device(_s("c", "_NXX", 1, "Dial", "PJSIP/${EXTEN}"), "PJSIP/0003*210")
    assert not dials_device(_s("c", "_X.", 1, "Queue", "PJSIP/0003*210"), "PJSIP/0003*210")


def test_the_feature_must_be_set_before_the_dial_or_inherited_through_local() -> None:
    steps = [
        _s("in", "_XXXX*XXX", 1, "Set", "__DYNAMIC_FEATURES=other#pbxrec"),
        _s("in", "_XXXX*XXX", 2, "Dial", "PJSIP/${EXTEN},60"),
        _s("late", "210", 1, "Dial", "PJSIP/0003*210"),
        _s("late", "210", 2, "Set", "__DYNAMIC_FEATURES=pbxrec"),
        _s("front", "299", 1, "Set", "__DYNAMIC_FEATURES=pbxrec"),
        _s("front", "299", 2, "Dial", "Local/0003*210@inner,60"),
        _s("inner", "_XXXX*XXX", 1, "Dial", "PJSIP/${EXTEN}"),
    ]
    found = {(s.context, ok) for s, ok in dial_paths(steps, "PJSIP/0003*210", "pbxrec").items()}
    assert found == {("in", True), ("late", False), ("inner", True)}
    assert all(not ok for ok in dial_paths(steps, "PJSIP/0003*210", "nosuch").values())


def test_getconfig_answers_are_read_by_category_and_line() -> None:
    config = parse_config({"Response": "Success", "Category-000000": "general",
                           "Line-000000-000001": "channelvars=A,B",
                           "Line-000000-000000": "enabled=yes",
                           "Category-000001": "pbx-bridge", "Line-000001-000000": "read=call"})
    assert config == [("general", [("enabled", "yes"), ("channelvars", "A,B")]),
                      ("pbx-bridge", [("read", "call")])]
    assert values(config, "pbx-bridge", "read") == ["call"]


def test_folder_rights_follow_owner_group_and_other(tmp_path) -> None:
    folder = tmp_path / "monitor"
    folder.mkdir()
    folder.chmod(0o750)
    st = os.stat(folder)
    assert writable_by(st, "root", "") is True
    assert writable_by(st, "no-such-user-pbx-doctor", "") is None
    nobody = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert writable_by(nobody, "nobody", "") is False
    open_all = os.stat_result((stat.S_IFDIR | 0o777, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert writable_by(open_all, "nobody", "") is True


def test_the_doctor_checks_every_module_modules_conf_marks_required() -> None:
    marks = marked_modules((DEFAULT_CONF_DIR / "modules.conf").read_text())
    required = {m for m, why in marks.items() if why == "required"}
    assert required <= set(REQUIRED_MODULES), required - set(REQUIRED_MODULES)


def test_each_finding_is_one_line_with_its_fix_and_json_says_ok() -> None:
    bad = failed("modules", "not loaded: func_sha1", "load = func_sha1.so")
    assert bad.line() == "FAIL modules: not loaded: func_sha1 -> fix: load = func_sha1.so"
    assert "\n" not in bad.line()
    assert '"ok": false' in as_json([passed("a", "x"), bad])
    assert '"ok": true' in as_json([passed("a", "x")])
