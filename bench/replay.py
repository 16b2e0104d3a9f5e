"""Event ingest at saturation: a stand-in AMI server, in its own process, that answers
the login and every action, then on demand blasts a stream of real AMI events (captured
from the sandbox Asterisk) as fast as the socket takes them.

The stream is the capture repeated, each repetition with fresh Uniqueids/Linkedids, so
the tracker sees new calls come and go instead of tombstoned ones.
"""

from __future__ import annotations

import multiprocessing as mp
import selectors
import socket
import time

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
CHUNK = 65536
#: Longest wait for an answer of the server process: a stuck run fails, never hangs.
PIPE_TIMEOUT = 120.0


def rewrite(blocks: list[bytes], reps: int, system_name: str = "") -> list[bytes]:
    """The captured event blocks, ``reps`` times, with ids shifted per repetition.

    A block may come with or without its blank line: each gets exactly one (two would
    make every event an empty message too, and a reader counting blank lines stop
    half-way, leaving the server blocked on a full socket: the old hang).
    ``system_name``: put in front of every Uniqueid/Linkedid, as an Asterisk with
    asterisk.conf ``systemname`` does (``pbx2-1795862364.7``)."""
    out: list[bytes] = []
    blocks = [b.removesuffix(b"\r\n\r\n") for b in blocks]
    prefix = f"{system_name}-".encode() if system_name else b""
    for rep in range(reps):
        shift = rep * 10_000_000
        for block in blocks:
            lines = block.split(b"\r\n")
            for i, line in enumerate(lines):
                key, sep, value = line.partition(b": ")
                if sep and (key.endswith(b"Uniqueid") or key.endswith(b"Linkedid")):
                    epoch, dot, seq = value.partition(b".")
                    if dot and seq.isdigit():
                        lines[i] = (key + b": " + prefix + epoch + b"."
                                    + str(int(seq) + shift).encode())
            out.append(b"\r\n".join(lines) + b"\r\n\r\n")
    return out


def chunks_of(blocks: list[bytes]) -> list[bytes]:
    """Socket-sized writes that never split a message (the responder writes in between)."""
    chunks, cur, size = [], [], 0
    for b in blocks:
        cur.append(b)
        size += len(b)
        if size >= CHUNK:
            chunks.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        chunks.append(b"".join(cur))
    return chunks


def _field(block: bytes, name: bytes) -> bytes:
    for line in block.split(b"\r\n"):
        key, sep, value = line.partition(b": ")
        if sep and key.lower() == name.lower():
            return value
    return b""


def _answers(blocks: list[bytes], system_name: bytes = b"") -> bytes:
    out = []
    for block in blocks:
        action = _field(block, b"Action").lower()
        aid = _field(block, b"ActionID")
        if not action:
            continue
        if action == b"coreshowchannels":
            out.append(
                b"Response: Success\r\nActionID: " + aid + b"\r\nEventList: start\r\n"
                b"Message: Channels will follow\r\n\r\n"
                b"Event: CoreShowChannelsComplete\r\nActionID: " + aid
                + b"\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
            )
        elif action == b"coresettings":
            # What the bridge reads of it (core/nodes.py, NodeIdentity): Asterisk sends
            # the field, empty without asterisk.conf systemname.
            out.append(b"Response: Success\r\nActionID: " + aid
                       + b"\r\nAMIversion: 11.0.0\r\nSystemName: " + system_name + b"\r\n\r\n")
        elif action == b"logoff":
            out.append(b"Response: Goodbye\r\nActionID: " + aid + b"\r\n\r\n")
        else:
            out.append(b"Response: Success\r\nActionID: " + aid + b"\r\nMessage: ok\r\n\r\n")
    return b"".join(out)


def _pump(conn: socket.socket, pipe, chunks: list[bytes], system_name: bytes) -> None:
    """One connection, single-threaded: answers first, then the blast when told to go.
    Answers are only ever written between two whole chunks, never inside a message."""
    conn.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(conn, selectors.EVENT_READ)
    inbox = b""
    answers = b""  # whole answers waiting to be written
    current = memoryview(b"")  # what is left of the chunk being written
    queue: list[bytes] = []
    t0 = 0.0
    blasting = False
    try:
        while True:
            if pipe.poll():
                cmd = pipe.recv()
                if cmd == "go" or isinstance(cmd, list):
                    # "go": the stream given at start; a list: these blocks (play()).
                    queue = list(reversed(chunks if cmd == "go" else chunks_of(cmd)))
                    blasting = True
                    t0 = time.perf_counter()
                elif cmd == "close":
                    return
            want = selectors.EVENT_READ
            if answers or current or queue:
                want |= selectors.EVENT_WRITE
            sel.modify(conn, want)
            for _key, mask in sel.select(timeout=0.01):
                if mask & selectors.EVENT_READ:
                    try:
                        data = conn.recv(65536)
                    except BlockingIOError:
                        data = None
                    if data == b"":
                        return
                    if data:
                        inbox += data
                        *blocks, inbox = inbox.split(b"\r\n\r\n")
                        answers += _answers(blocks, system_name)
                if mask & selectors.EVENT_WRITE:
                    if not current:
                        if answers:
                            current, answers = memoryview(answers), b""
                        elif queue:
                            current = memoryview(queue.pop())
                    if current:
                        try:
                            sent = conn.send(current)
                        except BlockingIOError:
                            sent = 0
                        current = current[sent:]
            if blasting and not queue and not current:
                blasting = False
                pipe.send(time.perf_counter() - t0)
    except OSError:
        return
    finally:
        sel.close()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()
        pipe.send("closed")


def _serve(pipe, chunks: list[bytes], system_name: bytes) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    pipe.send(srv.getsockname()[1])
    while True:
        cmd = pipe.recv()
        if cmd == "accept":
            conn, _ = srv.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.sendall(BANNER)
            _pump(conn, pipe, chunks, system_name)
        elif cmd == "quit":
            srv.close()
            return


class ReplayServer:
    """``port``; ``accept()`` before a client connects; ``go()`` blasts; ``close()``.
    ``system_name``: what its CoreSettings answers carry (rewrite() it into the ids)."""

    def __init__(self, blocks: list[bytes], system_name: str = "") -> None:
        self.events = len(blocks)
        self.bytes = sum(len(b) for b in blocks)
        ctx = mp.get_context("spawn")  # the parent runs an event loop and threads
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, daemon=True,
                                 args=(child, chunks_of(blocks), system_name.encode()))
        self._proc.start()
        self.port: int = self._pipe.recv()
        self._closed = False

    def accept(self) -> None:
        self._closed = False
        self._pipe.send("accept")

    def go(self) -> None:
        self._pipe.send("go")

    def play(self, blocks: list[bytes]) -> None:
        """Blasts ``blocks`` (whole messages) instead of the stream given at start: a
        run in phases on one connection (bench/call_memory.py); ``sent()`` as for go."""
        self._pipe.send(blocks)

    def _answer(self, what: str) -> object:
        if not self._pipe.poll(PIPE_TIMEOUT):
            raise RuntimeError(f"the replay server did not answer ({what}) "
                               f"within {PIPE_TIMEOUT:.0f} s")
        return self._pipe.recv()

    def sent(self) -> float:
        """Blocks until the blast is written; seconds the server spent writing it.

        NaN if the connection ended before (its "closed" is then consumed here)."""
        answer = self._answer("the blast written")
        if answer == "closed":
            self._closed = True
        return answer if isinstance(answer, float) else float("nan")

    def close_conn(self) -> None:
        """Ends the connection (if the client did not) and waits for the server to
        be back at accepting: exactly one "closed" per connection."""
        if not self._closed:
            self._pipe.send("close")
            self._answer("the connection closed")
        self._closed = False

    def stop(self) -> None:
        try:
            self._pipe.send("quit")
        except OSError:
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
