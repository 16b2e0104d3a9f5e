"""Client headers are parsed in time linear in their length (issue 9, item 1).

`Authorization: Bearer` + ~8,000 spaces + `a b` cost 0.1-0.85 s of the event loop per
request with the old `[Bb]earer +(\\S*) *` regex (quadratic backtracking). Timing here is
never an absolute threshold: the time for an input 8 times longer must stay well under
what a quadratic parser takes (64 times), with generous slack for a busy machine
(linear: about 1-8 times; the old regex: about 50-60 times through the app).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_bridge.api.auth import bearer_token
from pbx_bridge.api.media import media_type

# What the old pattern accepted, kept as the specification of the syntax.
OLD_SCHEME = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S*) *")
MAX_RATIO = 24.0  # 8x the input: linear <= ~8, quadratic ~64


def _old(value: str) -> str | None:
    match = OLD_SCHEME.fullmatch(value)
    return None if match is None else match.group(1)


PIECES = ["Bearer", "bearer", "BEARER", "bEaReR", "Basic", " ", "  ", "\t", "a", "b",
          "abc.DEF-_~+/", "=", "\u00a0", "\u2028", "\x1f", "", "Bearer "]


@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_bearer_token_accepts_exactly_what_the_old_pattern_did(value: str) -> None:
    assert bearer_token(value) == _old(value)


@given(st.text(max_size=40))
def test_bearer_token_on_any_text(value: str) -> None:
    assert bearer_token(value) == _old(value)
    assert bearer_token("Bearer " + value) == _old("Bearer " + value)


def _best_of(fn: Callable[[], Any], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


ADVERSARIAL = {
    "bearer spaces then a b": lambda n: "Bearer" + " " * n + "a b",
    "bearer spaces then tab": lambda n: "Bearer " + " " * n + "\t",
    "bearer long token then space": lambda n: "Bearer " + "a" * n + " b",
    "content-type parameters": lambda n: "application/json" + " ;" * n,
}


@pytest.mark.parametrize("parse", [bearer_token, media_type])
@pytest.mark.parametrize("make", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_parsers_stay_linear_on_adversarial_values(
    make: Callable[[int], str], parse: Callable[[str], object]
) -> None:
    n = 2000
    small, big = make(n), make(8 * n)
    t_small = _best_of(lambda: [parse(small) for _ in range(20)])
    t_big = _best_of(lambda: [parse(big) for _ in range(20)])
    assert t_big / max(t_small, 1e-6) < MAX_RATIO, (t_small, t_big)
