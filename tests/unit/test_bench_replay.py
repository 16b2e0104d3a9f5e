"""bench/ingest_path hung after a few rounds: its blocks came with their blank line and
bench.replay.rewrite added another, so the stream held twice the blank lines, the
floor's reader (counting them) stopped half-way and the stand-in server blocked on a
full socket. Each replayed event must end with exactly one blank line, whichever way
its block came, and the whole stream must parse to the same events."""

from __future__ import annotations

from bench.ingest_path import blocks
from bench.replay import rewrite
from pbx_bridge.pbx.framing import AmiParser


def test_each_replayed_event_ends_with_one_blank_line() -> None:
    with_blank = blocks()
    without = [b.removesuffix(b"\r\n\r\n") for b in with_blank]
    for given in (with_blank, without):
        stream = b"".join(rewrite(given, 2))
        assert stream.count(b"\r\n\r\n") == 2 * len(given)
        assert b"\r\n\r\n\r\n" not in stream
        parser = AmiParser(expect_banner=False)
        assert len(parser.feed(stream)) == 2 * len(given)


def test_repetitions_are_new_calls() -> None:
    block = b"Event: Newchannel\r\nUniqueid: 1795862364.7\r\nLinkedid: 1795862364.7\r\n\r\n"
    first, second = rewrite([block], 2)
    assert first == block
    assert b"Uniqueid: 1795862364.10000007\r\n" in second
