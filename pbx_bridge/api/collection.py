"""VoipNow's collection parameters (OpenSocial style) on the PhoneCalls list, and
``fields`` on a single PhoneCall. Pure: no I/O, no aiohttp; the handlers in
:mod:`pbx_bridge.api.routes` parse the query with :func:`parse_list_query` /
:func:`parse_one_query`, then :func:`select` the calls and :func:`project` each entry.

List parameters (all optional; each at most once; case-sensitive names and values):

- ``startIndex``: 0..4999, default 0 (``startindex_invalid``).
- ``count``: 1..4999, default 20 (``count_invalid``).
- ``filterBy``: ``id`` or ``published`` (``filterby_invalid``); required when
  ``filterOp`` or ``filterValue`` is given.
- ``filterOp``: ``equals``, ``contains``, ``startsWith``, ``greaterThan``, ``lessThan``,
  ``present``, ``inArray``; default ``contains`` (OpenSocial's) (``filterop_invalid``).
- ``filterValue``: 1..512 characters, required by every operation but ``present``, which
  takes none (``filtervalue_invalid``). ``inArray``: a comma-separated list of up to 100
  non-empty values. For ``published``, ``equals``/``greaterThan``/``lessThan``/``inArray``
  compare instants: the value is an ISO 8601 date-time (read by
  :func:`datetime.fromisoformat`; without a UTC offset it is UTC), the call's start is
  its whole second as shown; ``contains``/``startsWith`` compare the shown text. For
  ``id`` every comparison is on the text (``greaterThan``/``lessThan``: code-point order).
- ``sortOrder``: ``ascending`` (default, oldest first, as before) or ``descending``, by
  ``published``; calls started in the same instant keep the tracker's order (reversed
  for ``descending``). VoipNow has no code of its own for it: ``request_invalid``.
- ``fields``: a comma-separated list of PhoneCall field names (:data:`FIELDS`), no
  spaces; ``id`` is always kept; a view's fields cannot be named (``phoneCallView``
  comes whole) (``fields_invalid``).
- ``accessRequestToken``: the token (checked by the authentication, not here).

Any other parameter is ``request_invalid``: a parameter the client sent is never
silently ignored. GET one accepts ``fields`` and ``accessRequestToken`` only; PUT only
``accessRequestToken``.

The parameters are checked in this order, so one request always gets the same error:
unknown parameter, ``startIndex``, ``count``, ``filterBy``, ``filterOp``,
``filterValue``, ``sortOrder``, ``fields``.

No regular expression with backtracking touches client input: numbers are matched by a
single character class, lists are split on commas, dates parsed by the stdlib.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from multidict import MultiMapping

from pbx_bridge.api.errors import ApiError
from pbx_bridge.calls.model import PhoneCall, iso

__all__ = [
    "ALLOW_PUBLIC_PARAM",
    "DEFAULT_COUNT",
    "FIELDS",
    "FILTER_FIELDS",
    "FILTER_OPS",
    "IN_ARRAY_MAX",
    "LIST_PARAMS",
    "MAX_COUNT",
    "MAX_START_INDEX",
    "MIN_COUNT",
    "ONE_PARAMS",
    "PUT_PARAMS",
    "SORT_ORDERS",
    "VALUE_MAX",
    "Filter",
    "ListQuery",
    "check_put_query",
    "matches",
    "parse_list_query",
    "parse_one_query",
    "parse_time",
    "project",
    "select",
]

DEFAULT_COUNT = 20
MIN_COUNT = 1
MAX_COUNT = 4999
MAX_START_INDEX = 4999
VALUE_MAX = 512  # characters of a filterValue
IN_ARRAY_MAX = 100  # values of an inArray filterValue
FILTER_FIELDS = ("id", "published")
FILTER_OPS = ("equals", "contains", "startsWith", "greaterThan", "lessThan", "present", "inArray")
DEFAULT_FILTER_OP = "contains"  # OpenSocial's default
SORT_ORDERS = ("ascending", "descending")
# The PhoneCall's top-level fields, in the order it renders them (the model's order).
FIELDS = tuple(info.alias or name for name, info in PhoneCall.model_fields.items())
TOKEN_PARAM = "accessRequestToken"
LIST_PARAMS = ("startIndex", "count", "filterBy", "filterOp", "filterValue", "sortOrder",
               "fields", TOKEN_PARAM)
ONE_PARAMS = ("fields", TOKEN_PARAM)
# allowPublicTransfer: call control's sendCallTo may be a public number (CONTRACT 8);
# read by pbx_bridge/api/callcontrol_actions.py.
ALLOW_PUBLIC_PARAM = "allowPublicTransfer"
PUT_PARAMS = (TOKEN_PARAM, ALLOW_PUBLIC_PARAM)

_DECIMAL = re.compile(r"[0-9]{1,10}")  # one character class: linear, no backtracking

FilterField = Literal["id", "published"]
FilterOp = Literal["equals", "contains", "startsWith", "greaterThan", "lessThan", "present",
                   "inArray"]


@dataclass(frozen=True)
class Filter:
    by: FilterField
    op: FilterOp
    values: tuple[str, ...] = ()  # the filterValue (inArray: its items); () for present
    times: tuple[float, ...] = ()  # ``published`` with a time comparison: epoch seconds


@dataclass(frozen=True)
class ListQuery:
    start_index: int = 0
    count: int = DEFAULT_COUNT
    filter: Filter | None = None
    descending: bool = False
    fields: frozenset[str] | None = None  # None: every field


# --------------------------------------------------------------------------- parsing


def _shown(value: str) -> str:
    return repr(value[:40])


def _one(query: MultiMapping[str], name: str, code: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, code, f"{name} is given more than once")
    return values[0] if values else None


def _check_known(query: MultiMapping[str], allowed: Sequence[str]) -> None:
    for name in query:
        if name not in allowed:
            raise ApiError(
                400,
                "request_invalid",
                f"unknown query parameter {_shown(name)}; this resource takes "
                + (", ".join(a for a in allowed) if allowed else "none"),
            )


def _int(query: MultiMapping[str], name: str, code: str, default: int, low: int,
         high: int) -> int:
    raw = _one(query, name, code)
    if raw is None:
        return default
    if _DECIMAL.fullmatch(raw) is None or not low <= int(raw) <= high:
        raise ApiError(400, code, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def parse_time(value: str) -> float | None:
    """An ISO 8601 date-time as epoch seconds (UTC if it has no offset), or None."""
    if not 10 <= len(value) <= 64:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _filter(query: MultiMapping[str]) -> Filter | None:
    by = _one(query, "filterBy", "filterby_invalid")
    op = _one(query, "filterOp", "filterop_invalid")
    value = _one(query, "filterValue", "filtervalue_invalid")
    if by is None:
        if op is not None or value is not None:
            raise ApiError(400, "filterby_invalid",
                           "filterOp and filterValue need filterBy (id or published)")
        return None
    if by not in FILTER_FIELDS:
        raise ApiError(400, "filterby_invalid", "filterBy must be id or published")
    if op is None:
        op = DEFAULT_FILTER_OP
    elif op not in FILTER_OPS:
        raise ApiError(400, "filterop_invalid", "filterOp must be one of " + ", ".join(FILTER_OPS))
    if op == "present":
        if value is not None:
            raise ApiError(400, "filtervalue_invalid", "filterOp present takes no filterValue")
        return Filter(by, op)  # type: ignore[arg-type]
    if value is None or not 1 <= len(value) <= VALUE_MAX:
        raise ApiError(400, "filtervalue_invalid",
                       f"filterOp {op} needs a filterValue of 1 to {VALUE_MAX} characters")
    values = tuple(value.split(",")) if op == "inArray" else (value,)
    if op == "inArray" and (len(values) > IN_ARRAY_MAX or "" in values):
        raise ApiError(400, "filtervalue_invalid", "inArray takes a comma-separated list of "
                       f"1 to {IN_ARRAY_MAX} non-empty values")
    times: tuple[float, ...] = ()
    if by == "published" and op in ("equals", "greaterThan", "lessThan", "inArray"):
        parsed = [parse_time(v) for v in values]
        if any(t is None for t in parsed):
            raise ApiError(400, "filtervalue_invalid", "filterValue must be an ISO 8601 "
                           "date-time such as 2026-11-30T16:08:50+01:00")
        times = tuple(t for t in parsed if t is not None)
    return Filter(by, op, values, times)  # type: ignore[arg-type]


def _fields(query: MultiMapping[str]) -> frozenset[str] | None:
    raw = _one(query, "fields", "fields_invalid")
    if raw is None:
        return None
    names = raw.split(",")
    for name in names:
        if name not in FIELDS:
            raise ApiError(400, "fields_invalid", f"unknown PhoneCall field {_shown(name)}; "
                           "fields takes a comma-separated list of " + ", ".join(FIELDS))
    return frozenset(names) | {"id"}


def parse_list_query(query: MultiMapping[str]) -> ListQuery:
    """The list's query, fully checked (see the module doc for the order); ApiError 400."""
    _check_known(query, LIST_PARAMS)
    start_index = _int(query, "startIndex", "startindex_invalid", 0, 0, MAX_START_INDEX)
    count = _int(query, "count", "count_invalid", DEFAULT_COUNT, MIN_COUNT, MAX_COUNT)
    flt = _filter(query)
    order = _one(query, "sortOrder", "request_invalid")
    if order is not None and order not in SORT_ORDERS:
        raise ApiError(400, "request_invalid", "sortOrder must be ascending or descending")
    return ListQuery(start_index, count, flt, order == "descending", _fields(query))


def parse_one_query(query: MultiMapping[str]) -> frozenset[str] | None:
    """GET one: ``fields`` (None: every field)."""
    _check_known(query, ONE_PARAMS)
    return _fields(query)


def check_put_query(query: MultiMapping[str]) -> None:
    """PUT takes no query parameter but the token and allowPublicTransfer."""
    _check_known(query, PUT_PARAMS)


# --------------------------------------------------------------------------- applying


def _match_text(op: str, text: str | None, flt: Filter) -> bool:
    if text is None:
        return False
    if op == "present":
        return True
    value = flt.values[0]
    if op == "equals":
        return text == value
    if op == "contains":
        return value in text
    if op == "startsWith":
        return text.startswith(value)
    if op == "greaterThan":
        return text > value
    if op == "lessThan":
        return text < value
    return text in flt.values  # inArray


def _match_time(op: str, published: float | None, flt: Filter) -> bool:
    if published is None:
        return False
    shown = float(int(published))  # the whole second the PhoneCall shows
    if op == "equals":
        return shown == flt.times[0]
    if op == "greaterThan":
        return shown > flt.times[0]
    if op == "lessThan":
        return shown < flt.times[0]
    return shown in flt.times  # inArray


def matches(flt: Filter, call_id: str, published: float | None) -> bool:
    """Does a call with this id and start time pass the filter?"""
    if flt.by == "id":
        return _match_text(flt.op, call_id, flt)
    if flt.times:
        return _match_time(flt.op, published, flt)
    return _match_text(flt.op, iso(published), flt)


T = TypeVar("T")


def select(
    query: ListQuery,
    items: Iterable[T],
    call_id: Callable[[T], str],
    published: Callable[[T], float | None],
) -> tuple[int, list[T]]:
    """Filter, sort (by published; ties in the given order) and page ``items``: (total
    after the filter, the page)."""
    kept = [
        item for item in items
        if query.filter is None or matches(query.filter, call_id(item), published(item))
    ]
    kept.sort(key=lambda i: published(i) or 0.0)  # stable: ties keep the given order
    if query.descending:
        kept.reverse()
    return len(kept), kept[query.start_index : query.start_index + query.count]


def project(entry: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
    """The PhoneCall with only the named fields (``id`` always); itself with None."""
    if fields is None:
        return entry
    return {k: v for k, v in entry.items() if k in fields}
