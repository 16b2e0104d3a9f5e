"""AMI wire format, sans-IO: bytes in -> messages out, and actions -> bytes.

Nothing here touches a socket, a clock or an event loop, so every rule of the
framing is testable with byte strings alone (in the style of h11 / wsproto).

The Asterisk Manager Interface speaks lines of ``Key: Value`` terminated by
CRLF; a blank line ends a message.  The very first line a server sends is a
banner such as ``Asterisk Call Manager/11.0.0`` with no blank line after it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence
from itertools import chain, repeat

__all__ = [
    "MAX_LINE",
    "MAX_MESSAGE",
    "AmiParser",
    "Message",
    "encode_action",
]

Message = dict[str, str]

#: A single line longer than this (in decoded characters) discards its message.
MAX_LINE = 64 * 1024
#: A message longer than this (in decoded characters) is discarded.
MAX_MESSAGE = 1024 * 1024

# Whitespace stripped around keys and values.  Only ASCII blanks: AMI never
# pads with anything else, and a fixed set keeps the fast and the slow path of
# the parser provably identical.
_BLANKS = " \t\r"
_CHANVAR = "ChanVariable"
# Endless argument streams for map(str.split, lines, ": ", 1): a C-level loop.
_COLON_SP = repeat(": ")
_ONE = repeat(1)
# Stands for a partial line whose content no longer matters (while skipping).
_SOME = "~"


class AmiParser:
    """Incremental AMI message parser.

    ``feed()`` any chunking of the byte stream; it returns the messages that
    became complete.  It never raises on hostile input: lines without a colon
    are dropped and counted in ``garbage``, as are oversized lines/messages.

    Header rules:

    * a line is split on its first ``": "``, or on its first ``":"`` if it has
      no ``": "``; key and value are stripped of spaces/tabs;
    * ``XChanVariable: NAME=value`` (``channelvars=`` in manager.conf; the key
      may carry a prefix such as ``Dest``) is stored as ``XChanVariable(NAME)``;
    * any other repeated key (the ``Output`` lines of ``Command``) is joined
      with ``"\\n"`` in arrival order;
    * lines end with CRLF or a bare LF; a blank line ends a message.

    Memory is bounded: a line over ``MAX_LINE`` or a message over
    ``MAX_MESSAGE`` characters is dropped (its remaining bytes are skipped up
    to its blank line) and counted in ``garbage``.
    """

    __slots__ = (
        "_decoder",
        "_lines",
        "_pending_cr",
        "_size",
        "_skipping",
        "_tail",
        "_tail_len",
        "banner",
        "garbage",
    )

    def __init__(self, *, expect_banner: bool = True) -> None:
        # Incremental: a UTF-8 character split across two TCP reads is held
        # back by the decoder instead of being mangled (panoramisk dropped it).
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending_cr = False  # a feed ended in "\r": its "\n" may come next
        # The last, unterminated line, in pieces (joined once it ends, for the
        # same reason as _lines).
        self._tail: list[str] = []
        self._tail_len = 0
        # Complete lines of the unfinished message.  Kept as a list and
        # extended, so a peer trickling one byte per read costs linear time.
        self._lines: list[str] = []
        self._size = 0  # characters in _lines
        self._skipping = False  # inside an oversized message being discarded
        #: The server's first line (``Asterisk Call Manager/x.y.z``); None while
        #: still waiting for it, "" if the stream had none.
        self.banner: str | None = None if expect_banner else ""
        #: Lines without a colon and oversized lines/messages thrown away.
        self.garbage = 0

    def feed(self, data: bytes) -> list[Message]:
        """Consume ``data``; return the messages completed by it (maybe none)."""
        text = self._decoder.decode(data)
        if not text:
            return []
        if self._pending_cr:
            text = "\r" + text
            self._pending_cr = False
        if text[-1] == "\r":
            text = self._hold_back_cr(text)
            if not text:
                return []
        n_nl = text.count("\n")
        if not n_nl:
            self._grow_tail(text)
            return []
        # Split into lines at C speed.  Asterisk ends lines with CRLF; a bare
        # LF is tolerated by normalising (a rarer, slower path).
        lines = text.split("\r\n")
        if len(lines) - 1 == n_nl:
            odd = "\t" in text or text.count("\r") != n_nl  # tab or lone CR
        else:
            text = text.replace("\r\n", "\n")
            lines = text.split("\n")
            odd = "\t" in text or "\r" in text
        chanvars = _CHANVAR in text
        long_lines = len(text) > MAX_LINE  # only then can a line be too long
        head_joined = bool(self._tail)
        if head_joined:
            lines[0] = "".join(self._tail) + lines[0]
            long_lines = long_lines or len(lines[0]) > MAX_LINE
        tail = lines.pop()
        self._tail = [tail] if tail else []
        self._tail_len = len(tail)

        if self._skipping:
            if not self._skip_rest(lines):
                return []
            head_joined = False
        if self.banner is None:
            if not lines:
                self._grow_tail("")
                return []
            if self._take_banner(lines):
                head_joined = False

        out: list[Message] = []
        ends = lines.count("")
        if ends and (self._lines or head_joined):
            self._parse_continued(lines, out)
            ends -= 1
        if ends:
            self._parse_many(lines, ends, odd, chanvars, long_lines or len(text) > MAX_MESSAGE, out)
        if lines:
            self._carry(lines, long_lines)
        self._grow_tail("")
        return out

    # -- the rarer paths of feed() -------------------------------------------

    def _hold_back_cr(self, text: str) -> str:
        """``text`` without its final CR, which is remembered: the LF after it may
        be the first byte of the next feed, and CR + LF must stay one line end."""
        self._pending_cr = True
        return text[:-1]

    def _skip_rest(self, lines: list[str]) -> bool:
        """Drop the lines of the oversized message being skipped, up to its blank line.

        False if that blank line has not come yet: every line here belongs to it.
        """
        try:
            end = lines.index("")
        except ValueError:
            self._grow_tail("")
            return False
        del lines[: end + 1]
        self._skipping = False
        return True

    def _take_banner(self, lines: list[str]) -> bool:
        """Set ``banner`` from the stream's first line; True if that line was a banner
        (and is removed from ``lines``), False if it was a header (and stays)."""
        first = lines[0]
        if ":" in first:
            # Not a banner (a proxy, or a parser attached mid-stream): the
            # first header of the first message, keep it.
            self.banner = ""
            return False
        self.banner = first.strip(_BLANKS)
        del lines[0]
        return True

    # -- the messages of a feed -------------------------------------------

    def _parse_continued(self, lines: list[str], out: list[Message]) -> None:
        """Parse the first message of ``lines`` (removing it) into ``out``: one that
        continues lines of earlier feeds, which this feed's text-wide checks did not
        see, so it is parsed alone."""
        end = lines.index("")
        block = self._lines + lines[:end]
        del lines[: end + 1]
        self._lines = []
        self._size = 0
        joined = "\n".join(block)
        if block and not (len(joined) > MAX_LINE and self._too_big(block)):
            msg = self._parse_one(block, "\t" in joined or "\r" in joined)
            if msg:
                out.append(msg)

    def _parse_many(
        self,
        lines: list[str],
        ends: int,
        odd: bool,
        chanvars: bool,
        check: bool,
        out: list[Message],
    ) -> None:
        """Parse the first ``ends`` messages of ``lines`` (removing them) into ``out``.

        The fast path does C-level work per line -- the parser must keep up
        with a busy PBX in CPython: ``dict(map(str.split, lines, ": ", 1))``.
        Whenever its result could differ from ``_parse_slow`` (a tab or lone
        CR, a line without ": ", a repeated or empty key, padding to strip)
        the message goes the slow way instead, so both always agree; a
        hypothesis test checks that.  The padding check is made once over all
        the messages of the feed: it almost never fires.
        """
        slow = self._parse_slow
        index = lines.index
        build = _build_renamed if chanvars else _build
        fast: list[tuple[int, Message, list[str]]] = []  # (position in out, msg, lines)
        start = 0
        for _ in range(ends):
            end = index("", start)
            block = lines[start:end]
            start = end + 1
            if not block or (check and self._too_big(block)):
                continue
            if odd:
                msg = slow(block)
            else:
                try:
                    msg = build(block)
                except ValueError:  # a line without ": "
                    msg = slow(block)
                else:
                    if len(msg) == len(block) and "" not in msg:
                        fast.append((len(out), msg, block))
                        out.append(msg)
                        continue
                    msg = slow(block)  # a repeated or empty key
            if msg:
                out.append(msg)
        del lines[:start]
        if fast and _padded([f[1] for f in fast]):
            # Rare: find the padded ones and let the slow path strip them.
            gone: list[int] = []
            for pos, msg, block in fast:
                if _padded([msg]):
                    redone = slow(block)
                    if redone:
                        out[pos] = redone
                    else:
                        gone.append(pos)
            for pos in reversed(gone):
                del out[pos]

    def _parse_one(self, block: list[str], odd: bool) -> Message | None:
        """Parse one message on its own, by the same rules."""
        if not odd:
            try:
                msg = _build_renamed(block)
            except ValueError:
                pass
            else:
                if len(msg) == len(block) and "" not in msg and not _padded([msg]):
                    return msg
        return self._parse_slow(block)

    def _too_big(self, block: list[str]) -> bool:
        if sum(map(len, block)) > MAX_MESSAGE or max(map(len, block)) > MAX_LINE:
            self.garbage += 1
            return True
        return False

    def _carry(self, lines: list[str], long_lines: bool) -> None:
        """Keep the complete lines of the unfinished message, within bounds."""
        self._lines += lines
        self._size += sum(map(len, lines))
        if self._size > MAX_MESSAGE or (long_lines and max(map(len, lines)) > MAX_LINE):
            self._drop()

    def _grow_tail(self, text: str) -> None:
        """Extend the unterminated last line, within bounds."""
        if self._skipping:
            # Its content no longer matters, only whether it is empty.
            if self._tail or text:
                self._tail = [_SOME]
                self._tail_len = 1
            return
        if text:
            self._tail.append(text)
            self._tail_len += len(text)
        if self._tail_len > MAX_LINE or self._size + self._tail_len > MAX_MESSAGE:
            if self.banner is None:
                self.banner = ""  # a first line that never ends: no banner
            self._drop()

    def _drop(self) -> None:
        """Throw the unfinished message away; skip the rest of it."""
        self.garbage += 1
        self._lines = []
        self._size = 0
        if self._tail:
            self._tail = [_SOME]
            self._tail_len = 1
        self._skipping = True

    # -- one message -------------------------------------------------------

    def _parse_slow(self, lines: list[str]) -> Message | None:
        """The reference parser: one line at a time, every rule spelled out."""
        msg: Message = {}
        for line in lines:
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
                if not sep:
                    if line.strip(_BLANKS):
                        self.garbage += 1
                    continue
            key = key.strip(_BLANKS)
            value = value.strip(_BLANKS)
            if not key:
                self.garbage += 1
                continue
            if key.endswith(_CHANVAR):
                name, eq, val = value.partition("=")
                if eq:
                    key = f"{key}({name})"
                    value = val
            prev = msg.get(key)
            msg[key] = value if prev is None else f"{prev}\n{value}"
        return msg or None


def _build(lines: list[str]) -> Message:
    """``Key: Value`` lines to a dict, in C; ValueError if a line has no ": "."""
    return dict(map(str.split, lines, _COLON_SP, _ONE))


def _build_renamed(lines: list[str]) -> Message:
    """Like ``_build``, renaming ``XChanVariable: NAME=value`` to ``XChanVariable(NAME)``."""
    pairs = list(map(str.split, lines, _COLON_SP, _ONE))
    for p in pairs:
        if p[0].endswith(_CHANVAR) and len(p) == 2:
            name, eq, value = p[1].partition("=")
            if eq:
                p[0] = f"{p[0]}({name})"
                p[1] = value
    return dict(pairs)


def _padded(msgs: list[Message]) -> bool:
    """Might a key or value of these fast-parsed messages need stripping?

    Joins (C speed) and searches; only spaces matter, since tabs and CRs
    already sent their messages down the slow path.  A key with any space
    counts, to keep this cheap: the slow path then decides.
    """
    if " " in "".join(chain.from_iterable(msgs)):
        return True
    values = "\n".join(chain.from_iterable(map(dict.values, msgs)))
    return " " in values and (
        values[0] == " " or values[-1] == " " or " \n" in values or "\n " in values
    )


# -- output ------------------------------------------------------------------

# C0 controls (CR, LF, NUL, ...) and DEL.  A CR or LF would let a value end
# the header and inject new ones (a whole new action, even); the rest have no
# business in AMI either.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_RESERVED = frozenset({"action", "actionid"})


def _check(kind: str, text: str) -> str:
    if _FORBIDDEN.search(text):
        raise ValueError(f"AMI {kind} contains a control character: {text!r}")
    return text


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"AMI header key must be str, not {type(key).__name__}")
    if not key or not key.strip():
        raise ValueError("AMI header key is empty")
    if ":" in key:
        raise ValueError(f"AMI header key contains ':': {key!r}")
    return _check("header key", key)


def _value_text(key: str, value: object) -> str:
    if isinstance(value, str):
        return _check(f"value of {key!r}", value)
    if isinstance(value, int):  # bool included: Asterisk reads True/False fine
        return str(value)
    raise TypeError(f"AMI header {key!r}: value must be str or int, not {type(value).__name__}")


def encode_action(
    action: str,
    action_id: str,
    headers: Mapping[str, str | int | Sequence[str]] | None = None,
) -> bytes:
    """Build one AMI action, ready for the socket.

    A ``Sequence`` value (not a ``str``) emits the header once per item, as
    ``Originate`` needs for several ``Variable`` headers.  This is the only
    door towards Asterisk, so it refuses (``ValueError``) control characters
    in any key or value, ``":"`` or emptiness in keys, an empty action name,
    and ``Action`` / ``ActionID`` among ``headers`` (a second ActionID would
    let a caller steal another action's response).
    """
    if not isinstance(action, str) or not action.strip():
        raise ValueError("AMI action name is empty")
    parts = [
        "Action: ",
        _check("action name", action),
        "\r\nActionID: ",
        _check("ActionID", action_id),
        "\r\n",
    ]
    if headers:
        for key, value in headers.items():
            key = _check_key(key)
            if key.strip().lower() in _RESERVED:
                raise ValueError(f"AMI header {key!r} is set by the client itself")
            if isinstance(value, str | int):
                parts += (key, ": ", _value_text(key, value), "\r\n")
            elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
                for item in value:
                    parts += (key, ": ", _value_text(key, item), "\r\n")
            else:
                raise TypeError(f"AMI header {key!r}: value must be str, int or a sequence of str")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
