"""Every error code the service can answer with is documented, in the OpenAPI document
and in docs/contract.md. The codes are derived from the source (an AST walk over
pbx_bridge/), however they are raised, so a new code without docs fails here:

- `ApiError(status, "code", ...)` and `error_response(status, "code", ...)` calls (any
  callable whose name ends in `Error`/`error_response`, code positional or `code=`);
- `code = "..."` class attributes (the AccessError family);
- `code, message = ...` assignments and `{status: ("code", "message")}` maps (aiohttp's
  own refusals, errors.py).

A call whose code is neither a literal nor one of those forwarded names is reported, so
a computed code cannot slip past."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pbx_bridge.api.openapi import build_document

REPO = Path(__file__).resolve().parents[2]
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[a-z]+")
# Names a call may pass the code through (they hold a code found by one of the rules).
FORWARDED = {"code"}


@dataclass
class Found:
    codes: dict[str, str] = field(default_factory=dict)  # code -> where
    unresolved: list[str] = field(default_factory=list)


def _is_error_call(node: ast.Call) -> bool:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    return name.endswith("Error") or name == "error_response"


def _code_arg(node: ast.Call) -> ast.expr | None:
    for kw in node.keywords:
        if kw.arg == "code":
            return kw.value
    if len(node.args) >= 2 and isinstance(node.args[0], ast.Constant | ast.Name | ast.Attribute):
        status = node.args[0]
        if isinstance(status, ast.Constant) and not isinstance(status.value, int):
            return None  # not (status, code, ...): some other exception's message
        return node.args[1]
    return None


def _first_strings(node: ast.AST) -> list[str]:
    """The first element of every tuple of strings in `node` ("code", "message")."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Tuple) and sub.elts and isinstance(sub.elts[0], ast.Constant) \
                and isinstance(sub.elts[0].value, str):
            out.append(sub.elts[0].value)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and node is sub:
            out.append(sub.value)
    return out


def codes_in_source(source: str, where: str, found: Found | None = None) -> Found:
    found = found or Found()

    def add(code: str, line: int) -> None:
        assert CODE.fullmatch(code), f"{where}:{line}: {code!r} does not look like a code"
        found.codes.setdefault(code, f"{where}:{line}")

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _is_error_call(node):
            arg = _code_arg(node)
            if arg is None:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                add(arg.value, node.lineno)
            elif isinstance(arg, ast.Name) and arg.id in FORWARDED:
                pass
            elif isinstance(arg, ast.Attribute) and arg.attr in FORWARDED:
                pass
            else:
                found.unresolved.append(f"{where}:{node.lineno}: {ast.unparse(arg)}")
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets
                ) and isinstance(stmt.value, ast.Constant):
                    add(stmt.value.value, stmt.lineno)
        elif isinstance(node, ast.Assign):
            target = node.targets[0]
            if isinstance(target, ast.Tuple) and target.elts and \
                    isinstance(target.elts[0], ast.Name) and target.elts[0].id in FORWARDED:
                for code in _first_strings(node.value):
                    add(code, node.lineno)
                if isinstance(node.value, ast.Tuple) and isinstance(node.value.elts[0],
                                                                    ast.Constant):
                    add(node.value.elts[0].value, node.lineno)
            elif isinstance(target, ast.Name) and target.id.endswith("_ERRORS") and \
                    isinstance(node.value, ast.Dict):
                for code in _first_strings(node.value):  # validation.FIELD_ERRORS
                    add(code, node.lineno)
            elif isinstance(node.value, ast.Dict) and node.value.keys and all(
                isinstance(k, ast.Constant) and isinstance(k.value, int) for k in node.value.keys
            ) and all(isinstance(v, ast.Tuple) for v in node.value.values):
                for code in _first_strings(node.value):  # {status: ("code", "message")}
                    add(code, node.lineno)
    return found


def codes_of_the_service() -> Found:
    found = Found()
    for path in sorted((REPO / "pbx_bridge").rglob("*.py")):
        codes_in_source(path.read_text(), str(path.relative_to(REPO)), found)
    return found


def test_the_walk_finds_codes_however_they_are_raised() -> None:
    """The walker itself, on a module with each form and a computed code: a new code in
    any of these forms is found (so the tests below can fail)."""
    source = '''
class Refused(AccessError):
    status = 403
    code = "new_denied"
_CODES = {404: ("new_missing", "no such thing")}
def f(name):
    raise ApiError(400, "new_invalid", "bad")
def g():
    return error_response(status=409, code="new_state", message="no")
def h(exc):
    code, message = _CODES.get(exc.status, ("new_default", "whatever"))
    return error_response(exc.status, code, message)
def k(name):
    raise ApiError(400, f"{name}_invalid", "computed")
def m():
    raise ValueError("not an api error", "nor a code")
'''
    found = codes_in_source(source, "example.py")
    assert set(found.codes) == {"new_denied", "new_missing", "new_invalid", "new_state",
                                "new_default"}
    assert found.unresolved == ["example.py:14: f'{name}_invalid'"]


def test_the_service_raises_the_codes_everyone_knows() -> None:
    found = codes_of_the_service()
    assert not found.unresolved, "computed error codes cannot be checked against the " \
        "docs; raise literals: " + "; ".join(found.unresolved)
    known = {"pc_recformat_invalid", "pc_phonecall_invalid", "pc_phonecallview_invalid",
             "pc_action_invalid", "body_invalid", "user_invalid", "extension_invalid",
             "unauthorized", "access_denied", "pc_phonecallview_state", "body_too_large",
             "pbx_unavailable", "pbx_timeout", "not_found", "internal_error",
             "invalid_client", "invalid_request"}
    assert known <= set(found.codes), known - set(found.codes)


@pytest.mark.parametrize("doc", ["openapi", "docs/contract.md"])
def test_every_error_code_is_documented(doc: str) -> None:
    if doc == "openapi":
        text = json.dumps(build_document())
        missing = {c: w for c, w in codes_of_the_service().codes.items()
                   if f'"{c}"' not in text and f"`{c}`" not in text}
    else:
        text = (REPO / doc).read_text()
        missing = {c: w for c, w in codes_of_the_service().codes.items()
                   if f"`{c}`" not in text}
    assert not missing, f"error codes not documented in {doc}: {missing}"
