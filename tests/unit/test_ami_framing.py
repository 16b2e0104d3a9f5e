"""AMI framing: bytes -> messages, actions -> bytes (no sockets, no event loop)."""

from __future__ import annotations

import codecs
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbx_bridge.pbx.framing import MAX_LINE, MAX_MESSAGE, AmiParser, Message, encode_action

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def parse_all(data: bytes, *, expect_banner: bool = True) -> tuple[AmiParser, list[Message]]:
    parser = AmiParser(expect_banner=expect_banner)
    return parser, parser.feed(data)


def parse_chunks(chunks: list[bytes], *, expect_banner: bool = True) -> list[Message]:
    parser = AmiParser(expect_banner=expect_banner)
    out: list[Message] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# -- a reference parser: the spec written as plainly as possible ----------------


def reference(data: bytes, *, expect_banner: bool = True) -> list[Message]:
    """One-shot, line-by-line rendering of the rules (no size guards)."""
    # The decoder state after the last complete message does not matter, and a
    # one-shot decode of a prefix that ends on "\n" equals the incremental one.
    text = codecs.decode(data, "utf-8", errors="replace").replace("\r\n", "\n")
    lines = text.split("\n")
    lines.pop()  # unterminated last line
    if expect_banner and lines and ":" not in lines[0]:
        lines.pop(0)
    out: list[Message] = []
    msg: Message = {}
    for line in lines:
        if line == "":
            if msg:
                out.append(msg)
            msg = {}
            continue
        if ": " in line:
            key, value = line.split(": ", 1)
        elif ":" in line:
            key, value = line.split(":", 1)
        else:
            continue
        key, value = key.strip(" \t\r"), value.strip(" \t\r")
        if not key:
            continue
        if key.endswith("ChanVariable") and "=" in value:
            name, value = value.split("=", 1)
            key = f"{key}({name})"
        msg[key] = f"{msg[key]}\n{value}" if key in msg else value
    # A message counts only once its blank line arrived.
    return out


# -- basics ---------------------------------------------------------------------


def test_banner_and_login_response() -> None:
    data = (
        BANNER
        + b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n"
        + b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
    )
    parser, msgs = parse_all(data)
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert msgs == [
        {"Response": "Success", "ActionID": "a1", "Message": "Authentication accepted"},
        {"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"},
    ]
    assert parser.garbage == 0


def test_banner_arrives_in_pieces() -> None:
    parser = AmiParser()
    assert parser.feed(b"Asterisk Call Man") == []
    assert parser.banner is None
    assert parser.feed(b"ager/22.1.0\r") == []
    assert parser.feed(b"\nEvent: X\r\n\r\n") == [{"Event": "X"}]
    assert parser.banner == "Asterisk Call Manager/22.1.0"


def test_no_banner_when_first_line_is_a_header() -> None:
    parser, msgs = parse_all(b"Event: X\r\nA: 1\r\n\r\n")
    assert parser.banner == ""
    assert msgs == [{"Event": "X", "A": "1"}]


def test_expect_banner_false() -> None:
    parser, msgs = parse_all(b"Action: Ping\r\nActionID: 1\r\n\r\n", expect_banner=False)
    assert parser.banner == ""
    assert msgs == [{"Action": "Ping", "ActionID": "1"}]


def test_message_needs_its_blank_line() -> None:
    parser = AmiParser()
    assert parser.feed(BANNER + b"Event: X\r\nA: 1\r\n") == []
    assert parser.feed(b"\r\n") == [{"Event": "X", "A": "1"}]


def test_bare_lf_and_mixed_line_ends() -> None:
    data = BANNER + b"Event: A\nX: 1\n\nEvent: B\r\nY: 2\n\r\nEvent: C\nZ: 3\r\n\n"
    assert parse_all(data)[1] == [
        {"Event": "A", "X": "1"},
        {"Event": "B", "Y": "2"},
        {"Event": "C", "Z": "3"},
    ]


def test_crlf_split_between_cr_and_lf() -> None:
    data = BANNER + b"Event: A\r\nX: 1\r\n\r\nEvent: B\r\n\r\n"
    for cut in range(len(data) + 1):
        assert parse_chunks([data[:cut], data[cut:]]) == [{"Event": "A", "X": "1"}, {"Event": "B"}]


def test_extra_blank_lines_between_messages() -> None:
    data = BANNER + b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\n\r\nEvent: B\r\n\r\n"
    assert parse_all(data)[1] == [{"Event": "A"}, {"Event": "B"}]


def test_header_splitting_and_stripping() -> None:
    data = (
        BANNER
        + b"Event: X\r\n"
        + b"NoSpace:value\r\n"
        + b"Padded :  some value \t\r\n"
        + b"  Lead: x\r\n"
        + b"Colons: a: b: c\r\n"
        + b"Empty: \r\n"
        + b"Empty2:\r\n"
        + b"\r\n"
    )
    assert parse_all(data)[1] == [
        {
            "Event": "X",
            "NoSpace": "value",
            "Padded": "some value",
            "Lead": "x",
            "Colons": "a: b: c",
            "Empty": "",
            "Empty2": "",
        }
    ]


def test_first_colon_space_wins_over_first_colon() -> None:
    # "split on the first ': ', else on the first ':'"
    assert parse_all(b"a:b: c\r\n\r\n", expect_banner=False)[1] == [{"a:b": "c"}]


def test_chanvariable() -> None:
    data = (
        BANNER
        + b"Event: Newstate\r\n"
        + b"Channel: PJSIP/1001-00000001\r\n"
        + b"ChanVariable: PBX_REC=1732780000.5\r\n"
        + b"ChanVariable: PBX_FILE=/var/spool/x=y.wav\r\n"
        + b"ChanVariable: PBX_EMPTY=\r\n"
        + b"DestChanVariable: PBX_REC=1732780001.7\r\n"
        + b"\r\n"
    )
    assert parse_all(data)[1] == [
        {
            "Event": "Newstate",
            "Channel": "PJSIP/1001-00000001",
            "ChanVariable(PBX_REC)": "1732780000.5",
            "ChanVariable(PBX_FILE)": "/var/spool/x=y.wav",
            "ChanVariable(PBX_EMPTY)": "",
            "DestChanVariable(PBX_REC)": "1732780001.7",
        }
    ]


def test_chanvariable_without_equals_is_a_plain_header() -> None:
    assert parse_all(b"ChanVariable: odd\r\n\r\n", expect_banner=False)[1] == [
        {"ChanVariable": "odd"}
    ]


def test_command_output_lines_are_joined() -> None:
    data = (
        BANNER
        + b"Response: Success\r\nActionID: c1\r\nMessage: Command output follows\r\n"
        + b"Output: Channel              Location\r\n"
        + b"Output: 0 active channels\r\n"
        + b"Output: \r\n"
        + b"\r\n"
    )
    (msg,) = parse_all(data)[1]
    assert msg["Output"] == "Channel              Location\n0 active channels\n"
    assert msg["Message"] == "Command output follows"


def test_garbage_lines_are_counted_and_ignored() -> None:
    data = BANNER + b"Event: X\r\nthis is garbage\r\nA: 1\r\n: no key\r\n\r\njunk only\r\n\r\n"
    parser, msgs = parse_all(data)
    assert msgs == [{"Event": "X", "A": "1"}]
    assert parser.garbage == 3


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=20))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    parser = AmiParser()
    for chunk in chunks:
        for msg in parser.feed(chunk):
            assert isinstance(msg, dict)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in msg.items())
            assert msg


# -- UTF-8 ----------------------------------------------------------------------


def test_utf8_character_split_across_feeds() -> None:
    data = BANNER + "Event: X\r\nCallerIDName: Zoë Ünal 日本 🎧\r\n\r\n".encode()
    expected = [{"Event": "X", "CallerIDName": "Zoë Ünal 日本 🎧"}]
    for cut in range(len(data) + 1):
        assert parse_chunks([data[:cut], data[cut:]]) == expected
    # and one byte at a time
    assert parse_chunks([bytes([b]) for b in data]) == expected


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    (msg,) = parse_all(b"Event: X\r\nName: a\xffb\r\n\r\n")[1]
    assert msg["Name"] == "a\ufffdb"


# -- any chunking gives the same messages (hypothesis) ----------------------------

KEYS = [
    "Event",
    "ActionID",
    "Channel",
    "Output",
    "ChanVariable",
    "DestChanVariable",
    "K",
    "Uniqueid",
]
value_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=12
)


@st.composite
def lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["plain", "plain", "plain", "chanvar", "padded", "weird"]))
    key = draw(st.sampled_from(KEYS))
    value = draw(value_text)
    if kind == "plain":
        return f"{key}: {value}"
    if kind == "chanvar":
        name = draw(st.sampled_from(["PBX_REC", "A", "B b", ""]))
        return f"{key}: {name}={value}"
    if kind == "padded":
        pad = draw(st.sampled_from([" ", "  ", "\t", " \t"]))
        where = draw(st.sampled_from(["kl", "kr", "vl", "vr"]))
        k = pad + key if where == "kl" else key + pad if where == "kr" else key
        v = pad + value if where == "vl" else value + pad if where == "vr" else value
        return f"{k}:{' ' if where != 'kr' else ''}{v}"
    return draw(
        st.sampled_from(["garbage", ":", ": x", "K:", "K:v", "a:b: c", "K: a\rb", " ", "K: a\r"])
    )


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    msgs = draw(st.lists(st.lists(lines(), min_size=1, max_size=6), max_size=6))
    parts: list[str] = []
    if draw(st.booleans()):
        parts.append("Asterisk Call Manager/22.1.0\r\n")
    for msg in msgs:
        for line in msg:
            parts.append(line + draw(st.sampled_from(["\r\n", "\r\n", "\n"])))
        parts.append(draw(st.sampled_from(["\r\n", "\n", "\r\n\r\n"])))
    if draw(st.booleans()):
        parts.append("Event: unfinished\r\n")  # never completed
    return "".join(parts).encode()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(min_value=0), max_size=12))
@example(b"Event: X\r\nChanVariable: A=1\r\n\r\n", [9, 10])
def test_any_chunking_gives_the_same_messages(data: bytes, cuts: list[int]) -> None:
    whole = parse_all(data)[1]
    assert parse_chunks(split_at(data, cuts)) == whole
    assert whole == reference(data)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_byte_by_byte_gives_the_same_messages(data: bytes) -> None:
    assert parse_chunks([data[i : i + 1] for i in range(len(data))]) == reference(data)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(streams(), min_size=1, max_size=30))
def test_many_messages_in_one_feed_agree_with_reference(datas: list[bytes]) -> None:
    # Long feeds take the batched fast path; mix in the odd padded message.
    data = b"".join(d.replace(b"Asterisk Call Manager/22.1.0\r\n", b"") for d in datas)
    data = data.replace(b"Event: unfinished\r\n", b"")
    assert parse_all(data, expect_banner=False)[1] == reference(data, expect_banner=False)


# -- memory bounds ----------------------------------------------------------------


def test_oversized_line_is_discarded() -> None:
    big = b"X: " + b"a" * (MAX_LINE + 10) + b"\r\n"
    data = BANNER + b"Event: Big\r\n" + big + b"\r\nEvent: After\r\n\r\n"
    parser, msgs = parse_all(data)
    assert msgs == [{"Event": "After"}]
    assert parser.garbage == 1
    # the same in 4 KiB reads
    parser = AmiParser()
    out: list[Message] = []
    for i in range(0, len(data), 4096):
        out += parser.feed(data[i : i + 4096])
    assert out == [{"Event": "After"}]
    assert parser.garbage == 1


def test_oversized_message_is_discarded_in_reads() -> None:
    line = b"K: " + b"v" * 1000 + b"\r\n"
    body = line * (MAX_MESSAGE // len(line) + 10)
    data = BANNER + b"Event: Big\r\n" + body + b"\r\nEvent: After\r\n\r\n"
    parser = AmiParser()
    out: list[Message] = []
    peak = 0
    for i in range(0, len(data), 65536):
        out += parser.feed(data[i : i + 65536])
        peak = max(peak, parser._size + parser._tail_len)
    assert out == [{"Event": "After"}]
    assert parser.garbage == 1
    assert peak <= MAX_MESSAGE


def test_oversized_message_in_one_feed() -> None:
    line = b"K: " + b"v" * 1000 + b"\r\n"
    body = line * (MAX_MESSAGE // len(line) + 10)
    parser, msgs = parse_all(BANNER + b"Event: Big\r\n" + body + b"\r\nEvent: After\r\n\r\n")
    assert msgs == [{"Event": "After"}]
    assert parser.garbage == 1


def test_endless_line_is_bounded() -> None:
    parser = AmiParser()
    parser.feed(BANNER + b"Event: X\r\nK: ")
    for _ in range(300):  # 300 x 4 KiB without a newline: 1.2 MiB
        assert parser.feed(b"z" * 4096) == []
        assert parser._tail_len <= MAX_LINE + 4096
    assert parser.garbage == 1
    assert parser.feed(b"\r\n\r\nEvent: After\r\n\r\n") == [{"Event": "After"}]


def test_endless_first_line_is_bounded() -> None:
    parser = AmiParser()
    for _ in range(40):
        parser.feed(b"y" * 4096)
    assert parser.banner == ""
    assert parser._tail_len <= MAX_LINE
    assert parser.feed(b"\r\n\r\nEvent: After\r\n\r\n") == [{"Event": "After"}]


def test_trickled_message_takes_linear_time() -> None:
    # One byte per read must not re-copy the buffer each time (quadratic).
    data = BANNER + b"Event: X\r\n" + b"K: " + b"v" * 60_000 + b"\r\n" * 2
    parser = AmiParser()
    started = time.perf_counter()
    out: list[Message] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert time.perf_counter() - started < 2.0
    assert out == [{"Event": "X", "K": "v" * 60_000}]


# -- encode_action -----------------------------------------------------------------


def test_encode_action_basic() -> None:
    assert encode_action("Ping", "p1") == b"Action: Ping\r\nActionID: p1\r\n\r\n"
    assert encode_action(
        "Originate",
        "o1",
        {"Channel": "PJSIP/1001", "Timeout": 30000, "Variable": ["A=1", "B=Zoë"]},
    ) == (
        b"Action: Originate\r\nActionID: o1\r\nChannel: PJSIP/1001\r\nTimeout: 30000\r\n"
        + "Variable: A=1\r\nVariable: B=Zoë\r\n\r\n".encode()
    )


def test_encode_action_round_trips_through_parser() -> None:
    raw = encode_action("Setvar", "s1", {"Channel": "PJSIP/1-1", "Variable": "X", "Value": "a: b"})
    assert parse_all(raw, expect_banner=False)[1] == [
        {
            "Action": "Setvar",
            "ActionID": "s1",
            "Channel": "PJSIP/1-1",
            "Variable": "X",
            "Value": "a: b",
        }
    ]


CONTROL = [chr(c) for c in [*range(0x20), 0x7F]]


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "\r\n", "\t", "\x1b", "\x7f"])
def test_encode_action_rejects_control_chars(bad: str) -> None:
    with pytest.raises(ValueError):
        encode_action("Setvar", "1", {"Value": f"x{bad}Action: Hangup"})
    with pytest.raises(ValueError):
        encode_action("Setvar", "1", {f"Va{bad}lue": "x"})
    with pytest.raises(ValueError):
        encode_action("Setvar", "1", {"Variable": ["ok", f"x{bad}"]})
    with pytest.raises(ValueError):
        encode_action(f"Setvar{bad}", "1")
    with pytest.raises(ValueError):
        encode_action("Setvar", f"1{bad}")


@pytest.mark.parametrize("key", ["", " ", "Bad:Key", "ActionID", "actionid", "Action"])
def test_encode_action_rejects_bad_keys(key: str) -> None:
    with pytest.raises(ValueError):
        encode_action("Ping", "1", {key: "x"})


def test_encode_action_rejects_wrong_types() -> None:
    with pytest.raises(TypeError):
        encode_action("Ping", "1", {"K": 1.5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        encode_action("Ping", "1", {"K": b"bytes"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        encode_action("", "1")


@given(
    st.text(max_size=20),
    st.sampled_from(CONTROL),
    st.text(max_size=20),
    st.sampled_from(["key", "value", "item", "action", "id"]),
)
def test_encode_action_rejects_any_control_char(
    before: str, bad: str, after: str, where: str
) -> None:
    evil = before + bad + after
    with pytest.raises(ValueError):
        if where == "key":
            encode_action("A", "1", {evil: "v"})
        elif where == "value":
            encode_action("A", "1", {"K": evil})
        elif where == "item":
            encode_action("A", "1", {"K": ["fine", evil]})
        elif where == "action":
            encode_action(evil, "1")
        else:
            encode_action("A", evil)


@given(
    st.dictionaries(
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters=": "),
            min_size=1,
            max_size=10,
        ).filter(
            lambda k: (
                k.strip()
                and k.lower() not in {"action", "actionid"}
                and not k.endswith("ChanVariable")
            )
        ),
        st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20).map(
            str.strip
        ),
        max_size=6,
    )
)
def test_encode_then_parse_round_trip(headers: dict[str, str]) -> None:
    raw = encode_action("Test", "id-1", headers)
    (msg,) = parse_all(raw, expect_banner=False)[1]
    assert msg == {"Action": "Test", "ActionID": "id-1", **headers}
    # and no control byte can ever be on the wire except the CRLF framing
    assert not any((b < 0x20 and b not in (0x0D, 0x0A)) or b == 0x7F for b in raw)
