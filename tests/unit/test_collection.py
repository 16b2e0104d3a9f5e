"""VoipNow's collection parameters (pbx_bridge.api.collection), pure: parsing, filtering,
sorting, paging and ``fields``. The HTTP side is in test_api_calls.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from pbx_bridge.api import collection as c
from pbx_bridge.api.errors import ApiError

pytestmark = pytest.mark.unit

QUERY_CODES = {
    "request_invalid",
    "startindex_invalid",
    "count_invalid",
    "filterby_invalid",
    "filterop_invalid",
    "filtervalue_invalid",
    "fields_invalid",
}
T0 = 1795849232  # 2026-11-29T...Z, a whole second


@dataclass(frozen=True)
class Item:
    id: str
    published: float | None


def q(**params: str | list[str]) -> MultiDict[str]:
    out: MultiDict[str] = MultiDict()
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            out.add(key, v)
    return out


def code_of(query: MultiDict[str]) -> str:
    with pytest.raises(ApiError) as err:
        c.parse_list_query(query)
    assert err.value.status == 400
    return err.value.code


# --------------------------------------------------------------------------- parsing


def test_defaults() -> None:
    assert c.parse_list_query(q()) == c.ListQuery(0, 20, None, False, None)
    assert c.parse_list_query(q(accessRequestToken="t")) == c.ListQuery()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"count": "0"}, "count_invalid"),
        ({"count": "5000"}, "count_invalid"),
        ({"count": ["1", "2"]}, "count_invalid"),
        ({"count": "٣"}, "count_invalid"),  # Arabic-Indic 3: a digit to str.isdigit
        ({"startIndex": "5000"}, "startindex_invalid"),
        ({"startIndex": "-1"}, "startindex_invalid"),
        ({"startIndex": "9" * 10_000}, "startindex_invalid"),
        ({"filterBy": "extension"}, "filterby_invalid"),
        ({"filterBy": "ID"}, "filterby_invalid"),  # case-sensitive
        ({"filterValue": "x"}, "filterby_invalid"),
        ({"filterOp": "present"}, "filterby_invalid"),
        ({"filterBy": "id", "filterOp": "Equals", "filterValue": "x"}, "filterop_invalid"),
        ({"filterBy": "id", "filterOp": "equals"}, "filtervalue_invalid"),
        ({"filterBy": "id", "filterOp": "equals", "filterValue": ""}, "filtervalue_invalid"),
        ({"filterBy": "id", "filterValue": "x" * 513}, "filtervalue_invalid"),
        ({"filterBy": "id", "filterOp": "present", "filterValue": "x"}, "filtervalue_invalid"),
        ({"filterBy": "id", "filterOp": "inArray", "filterValue": "a,,b"}, "filtervalue_invalid"),
        ({"filterBy": "id", "filterOp": "inArray", "filterValue": ",".join("a" * 101)},
         "filtervalue_invalid"),
        ({"filterBy": "published", "filterOp": "equals", "filterValue": "today"},
         "filtervalue_invalid"),
        ({"filterBy": "published", "filterOp": "inArray",
          "filterValue": "2026-11-30T10:00:00Z,soon"}, "filtervalue_invalid"),
        ({"sortOrder": "descend"}, "request_invalid"),
        ({"sortOrder": ["ascending", "descending"]}, "request_invalid"),
        ({"fields": "id,callerId"}, "fields_invalid"),  # a view's field
        ({"fields": "id, extension"}, "fields_invalid"),
        ({"fields": "id,"}, "fields_invalid"),
        ({"fields": ["id", "link"]}, "fields_invalid"),
        ({"sortBy": "published"}, "request_invalid"),
        ({"Count": "5"}, "request_invalid"),
    ],
)
def test_invalid(params: dict, code: str) -> None:
    assert code_of(q(**params)) == code


def test_order_of_the_checks() -> None:
    """Unknown parameter, startIndex, count, filterBy, filterOp, filterValue, sortOrder,
    fields: the first wrong one decides."""
    wrong = {"x": "1", "startIndex": "-1", "count": "0", "filterBy": "zz", "filterOp": "zz",
             "filterValue": "", "sortOrder": "zz", "fields": "zz"}
    expected = ["request_invalid", "startindex_invalid", "count_invalid", "filterby_invalid",
                "filterop_invalid", "filtervalue_invalid", "request_invalid", "fields_invalid"]
    fixed = {"startIndex": "0", "count": "1", "filterBy": "id", "filterOp": "equals",
             "filterValue": "a", "sortOrder": "ascending", "fields": "id"}
    for i, code in enumerate(expected):
        params = {k: v for k, v in list(wrong.items())[i:]}
        params.update({k: v for k, v in fixed.items() if k not in params})
        assert code_of(q(**params)) == code, params


def test_parsed() -> None:
    got = c.parse_list_query(q(startIndex="4999", count="4999", filterBy="published",
                               filterOp="inArray",
                               filterValue="2026-11-30T10:00:00+01:00,2026-11-30T09:00:00",
                               sortOrder="descending", fields="extension,published"))
    when = datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()
    assert got == c.ListQuery(
        4999, 4999,
        c.Filter("published", "inArray",
                 ("2026-11-30T10:00:00+01:00", "2026-11-30T09:00:00"), (when, when)),
        True, frozenset({"id", "extension", "published"}),
    )
    assert c.parse_list_query(q(filterBy="id", filterValue="ab")).filter == c.Filter(
        "id", "contains", ("ab",))  # OpenSocial's default operation


def test_one_and_put_queries() -> None:
    assert c.parse_one_query(q()) is None
    assert c.parse_one_query(q(fields="link", accessRequestToken="t")) == {"id", "link"}
    for params in ({"count": "5"}, {"filterBy": "id"}):
        with pytest.raises(ApiError) as err:
            c.parse_one_query(q(**params))
        assert err.value.code == "request_invalid"
    c.check_put_query(q(accessRequestToken="t"))
    with pytest.raises(ApiError) as err:
        c.check_put_query(q(fields="id"))
    assert err.value.code == "request_invalid"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T10:00:00+01:00", datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()),
        ("2026-11-30T09:00:00Z", datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()),
        ("2026-11-30T09:00:00", datetime(2026, 11, 30, 9, tzinfo=UTC).timestamp()),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC).timestamp()),
        ("yesterday", None),
        ("2026-13-01T00:00:00Z", None),
        ("2" * 100_000, None),
    ],
)
def test_parse_time(text: str, expected: float | None) -> None:
    assert c.parse_time(text) == expected


# --------------------------------------------------------------------------- properties

_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x250), max_size=30)
_names = st.sampled_from([*c.LIST_PARAMS, "x", "Count", "sort"])
_values = st.one_of(
    _text,
    st.sampled_from(["0", "1", "20", "4999", "5000", "id", "published", *c.FILTER_OPS,
                     "ascending", "descending", "id,extension", "2026-11-30T09:00:00Z"]),
)


@given(st.lists(st.tuples(_names, _values), max_size=8))
@settings(max_examples=400, deadline=None)
def test_any_query_parses_or_is_a_query_code(pairs: list[tuple[str, str]]) -> None:
    """Whatever a client sends: a ListQuery within the limits, or 400 with one of the
    query codes; never another exception."""
    try:
        got = c.parse_list_query(MultiDict(pairs))
    except ApiError as err:
        assert err.status == 400 and err.code in QUERY_CODES, err.code
        return
    assert 0 <= got.start_index <= 4999 and 1 <= got.count <= 4999
    assert got.fields is None or ("id" in got.fields and got.fields <= set(c.FIELDS))


_ids = st.text("0123456789abcdef", min_size=1, max_size=6)
_items = st.lists(
    st.builds(Item, _ids, st.one_of(st.none(), st.integers(T0 - 300, T0 + 300).map(float))),
    max_size=25,
)


def _reference(flt: c.Filter, item: Item) -> bool:
    """The filter, written out the slow and obvious way."""
    if flt.by == "id":
        text = item.id
    elif item.published is None:
        return False
    elif flt.times:
        at = int(item.published)
        return {"equals": at == flt.times[0], "greaterThan": at > flt.times[0],
                "lessThan": at < flt.times[0], "inArray": at in flt.times}[flt.op]
    else:
        text = datetime.fromtimestamp(int(item.published), UTC).isoformat()
    value = flt.values[0] if flt.values else ""
    return {
        "equals": text == value, "contains": value in text, "startsWith": text.startswith(value),
        "greaterThan": text > value, "lessThan": text < value, "present": True,
        "inArray": text in flt.values,
    }[flt.op]


_filters = st.one_of(
    st.none(),
    st.builds(lambda op, v: c.Filter("id", op, () if op == "present" else tuple(v.split(","))
                                     if op == "inArray" else (v,)),
              st.sampled_from(c.FILTER_OPS), st.text("0123456789abcdef,", min_size=1,
                                                     max_size=6).filter(
                  lambda v: "" not in v.split(","))),
    st.builds(lambda op, t: c.Filter("published", op, ("x",), (float(t),)),
              st.sampled_from(["equals", "greaterThan", "lessThan", "inArray"]),
              st.integers(T0 - 300, T0 + 300)),
    st.builds(lambda op, v: c.Filter("published", op, (v,)),
              st.sampled_from(["contains", "startsWith"]),
              st.sampled_from(["2026", "T", ":3", "+00:00", "2026-11-29T"])),
)


@given(_items, _filters, st.integers(0, 30), st.integers(1, 30), st.booleans())
@settings(max_examples=400, deadline=None)
@example([Item("a", float(T0)), Item("b", float(T0))], None, 0, 20, True)
def test_select_is_filter_then_sort_then_page(
    items: list[Item], flt: c.Filter | None, start: int, count: int, descending: bool
) -> None:
    query = c.ListQuery(start, count, flt, descending, None)
    total, page = c.select(query, items, lambda i: i.id, lambda i: i.published)
    kept = [i for i in items if flt is None or _reference(flt, i)]
    ascending = sorted(kept, key=lambda i: i.published or 0.0)  # stable
    ordered = ascending[::-1] if descending else ascending
    assert total == len(kept)
    assert page == ordered[start : start + count]


@given(st.sets(st.sampled_from(c.FIELDS)))
def test_project_keeps_the_named_fields_and_id(names: set[str]) -> None:
    entry = {name: f"value of {name}" for name in c.FIELDS}
    query = c.parse_list_query(q(fields=",".join(names))) if names else None
    fields = query.fields if query else None
    got = c.project(entry, fields)
    assert set(got) == ((names | {"id"}) if names else set(c.FIELDS))
    assert all(got[k] == entry[k] for k in got)


@given(st.text(",0123456789-:T+Z", min_size=1000, max_size=5000))
@settings(max_examples=50, deadline=None)
def test_long_adversarial_values_are_refused_not_chewed_on(value: str) -> None:
    """Long values of the characters the parsers look at: a plain answer, no exception
    other than the query codes (the parsers split and compare; no regex backtracks)."""
    for params in ({"count": value}, {"startIndex": value},
                   {"filterBy": "published", "filterOp": "inArray", "filterValue": value},
                   {"fields": value}):
        assert code_of(q(**params)) in QUERY_CODES
