"""AMI client: the asyncio shell around :mod:`pbx_bridge.pbx.framing`.

One TCP link to Asterisk, kept alive by a supervisor task: connect, read the
banner, log in, then read forever; on any loss reconnect with capped,
fully-jittered exponential backoff.  A Ping watchdog notices half-open links.

Why not panoramisk: see DESIGN.md, "Facts about the libraries".  Each of its
defects has a regression test in tests/unit/test_ami_client.py.

Ordering contract: event handlers and connect/disconnect handlers run in ONE
dispatcher task, in the order things arrived on the wire.  The "connected"
marker is queued by the reader at the very moment it reads the Login
response, so every event read after login is handled after the connect
handlers (which typically resync with a CoreShowChannels list action).
Action responses are resolved by the reader directly, never through that
queue, so a handler may await an action without deadlocking.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from pbx_bridge.pbx.framing import AmiParser, Message, encode_action
from pbx_bridge.request_context import current_request_id

__all__ = [
    "AmiAuthError",
    "AmiClient",
    "AmiError",
    "AmiNotConnected",
    "AmiTimeout",
    "Message",
    "is_success",
]

log = logging.getLogger("pbx_bridge.ami")

Headers = Mapping[str, str | int | Sequence[str]]
EventHandler = Callable[[Message], Awaitable[None] | None]
StateHandler = Callable[[], Awaitable[None] | None]

#: A link that stayed up this long resets the reconnect backoff.
STABLE_LINK_SECONDS: Final = 30.0
CLOSE_TIMEOUT: Final = 5.0  # how long close() waits for its tasks to stop
_READ_SIZE: Final = 65536
_TRUE: Final = frozenset({"1", "yes", "true", "y", "t", "on"})  # Asterisk's ast_true()


class AmiError(Exception):
    """Base class of every error this client raises."""


class AmiNotConnected(AmiError):
    """No logged-in link (yet, any more, or the client was closed)."""


class AmiTimeout(AmiError):
    """No answer in time."""


class AmiAuthError(AmiError):
    """Asterisk rejected the Login."""


def is_success(msg: Message) -> bool:
    """True for a positive Response (``Success``; ``Follows``/``Goodbye``/``Pong`` too)."""
    return msg.get("Response", "").lower() in ("success", "follows", "goodbye", "pong")


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_CONNECTED: Final = _Marker("connected")
_DISCONNECTED: Final = _Marker("disconnected")


class _Pending:
    """An action waiting for its answer (and, for list actions, its events)."""

    __slots__ = ("events", "future", "is_list", "response")

    def __init__(self, future: asyncio.Future[Any], is_list: bool) -> None:
        self.future = future
        self.is_list = is_list
        self.response: Message | None = None
        self.events: list[Message] = []

    def finish(self, result: object) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            # Nobody may be awaiting it any more (timed out): don't warn.
            self.future.exception()


class AmiClient:
    """A self-healing AMI connection.  See the module docstring for the contract."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        action_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        auth_retry: float = 60.0,
        events: str = "on",
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.__secret = secret  # never logged, never in repr
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._last_answer = 0.0  # time.monotonic() of the last action response read
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.auth_retry = auth_retry
        self.events = events

        # Metrics, plain attributes on purpose.
        self.reconnects = 0  #: connection attempts after the first one
        self.events_received = 0  #: every Event read, list-action items included
        self.handler_errors = 0  #: exceptions raised by handlers (logged, swallowed)

        self._event_handlers: list[EventHandler] = []
        self._connect_handlers: list[StateHandler] = []
        self._disconnect_handlers: list[StateHandler] = []

        # ActionIDs: a random per-client prefix plus a counter, so two clients
        # (or a restarted bridge) never confuse each other's answers.
        self._id_prefix = f"pbxb-{secrets.token_hex(4)}-"
        self._id_counter = 0
        self._pending: dict[str, _Pending] = {}
        self._queue: asyncio.Queue[Message | _Marker] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        # Actions sent in one loop iteration leave together (see _write).
        self._outbox: list[bytes] = []
        self._outbox_writer: asyncio.StreamWriter | None = None
        self._login_id: str | None = None
        self._up_since: float | None = None  # loop time of the current login
        self._connected = False
        self._connected_event = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = asyncio.Event()

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"<AmiClient {self.username!r}@{self.host}:{self.port} {state}>"

    # -- handlers ----------------------------------------------------------

    def add_event_handler(self, fn: EventHandler) -> None:
        """Call ``fn(msg)`` (sync or async) for every event, in arrival order."""
        self._event_handlers.append(fn)

    def add_connect_handler(self, fn: StateHandler) -> None:
        """Await ``fn()`` after each successful login, before later events."""
        self._connect_handlers.append(fn)

    def add_disconnect_handler(self, fn: StateHandler) -> None:
        """Call ``fn()`` (sync or async) after each lost link, after its events."""
        self._disconnect_handlers.append(fn)

    # -- state -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Logged in right now."""
        return self._connected

    @property
    def backlog(self) -> int:
        """Events and markers queued for the handlers, not yet dispatched."""
        return self._queue.qsize()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once logged in; AmiTimeout after ``timeout`` seconds."""
        if self._connected:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._connected_event.wait()
        except TimeoutError:
            raise AmiTimeout(
                f"AMI at {self.host}:{self.port} not connected within {timeout}s"
            ) from None

    # -- life cycle --------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (in the background) and dispatching events."""
        if self._closing:
            raise AmiError("AmiClient is closed")
        if self._supervisor is not None:
            return
        self._dispatcher = asyncio.create_task(self._dispatch(), name="ami-dispatch")
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")

    async def close(self) -> None:
        """Stop everything; fail pending actions with AmiNotConnected.  Idempotent.

        Sends a Logoff if logged in.  Handlers still queued (including the
        disconnect handlers for this last link) are not run.  May be called
        from a handler.
        """
        if self._closing:
            if self._dispatcher is not asyncio.current_task():
                await self._closed.wait()
            return
        self._closing = True
        me = asyncio.current_task()
        try:
            tasks = [t for t in (self._supervisor, self._dispatcher) if t and t is not me]
            for task in tasks:
                task.cancel()
            if tasks:
                # Bounded: a handler that swallows its cancellation must not make
                # close() (and with it a server's shutdown) hang forever.
                _, stuck = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
                if stuck:
                    log.error("AMI client: %d task(s) ignored cancellation; left behind",
                              len(stuck))
            self._fail_pending(AmiNotConnected("AMI client closed"))
            self._set_connected(False)
        finally:
            self._closed.set()
        if me is not None and me is self._dispatcher:
            me.cancel()  # called from a handler: the dispatcher stops after it

    # -- actions -----------------------------------------------------------

    async def send_action(
        self,
        action: str,
        headers: Headers | None = None,
        *,
        timeout: float | None = None,
    ) -> Message:
        """Send an action; return its Response message, Success or Error alike.

        Raises AmiNotConnected when not logged in (or the link drops before
        the answer), AmiTimeout after ``timeout`` (default ``action_timeout``;
        for a synchronous ``Originate`` its own ``Timeout`` is added, since
        Asterisk answers only once the call is answered or given up), and
        ValueError for control characters in names or values.
        """
        self._require_connected()
        if timeout is None:
            timeout = self._default_timeout(action, headers)
        result: Message = await self._request(action, headers, timeout)
        return result

    async def send_list_action(
        self,
        action: str,
        headers: Headers | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[Message, list[Message]]:
        """Send an EventList action (CoreShowChannels, Status, ...).

        Returns the Response and the events carrying this action's ActionID,
        up to the one with ``EventList: Complete`` (included).  Those events
        are not dispatched to event handlers.  An Error response comes back
        with an empty list.
        """
        self._require_connected()
        if timeout is None:
            timeout = self.action_timeout
        result: tuple[Message, list[Message]] = await self._request(
            action, headers, timeout, is_list=True
        )
        return result

    async def command(self, cli: str, timeout: float | None = None) -> str:
        """Run a CLI command; return its output (``Output`` lines joined by "\\n").

        An Error response raises AmiError carrying Asterisk's message and output.
        """
        resp = await self.send_action("Command", {"Command": cli}, timeout=timeout)
        if not is_success(resp):
            detail = resp.get("Output") or resp.get("Message", "")
            raise AmiError(f"AMI Command {cli!r} failed: {detail}")
        return resp.get("Output", "")

    def _require_connected(self) -> None:
        if not self._connected:
            raise AmiNotConnected(f"AMI at {self.host}:{self.port} is not connected")

    def _default_timeout(self, action: str, headers: Headers | None) -> float:
        if action.lower() != "originate" or headers is None:
            return self.action_timeout
        values = {k.lower(): v for k, v in headers.items()}
        if str(values.get("async", "")).strip().lower() in _TRUE:
            return self.action_timeout
        try:
            ring_ms = float(str(values.get("timeout", 30000)))
        except ValueError:
            ring_ms = 30000.0
        return self.action_timeout + max(ring_ms, 0.0) / 1000.0

    def _next_id(self) -> str:
        self._id_counter += 1
        # An action an HTTP request caused carries that request's id (X-Request-Id, the
        # log's request_id), so the PBX side of a request can be found in Asterisk's log.
        request_id = current_request_id.get()
        suffix = f"-{request_id}" if request_id else ""
        return f"{self._id_prefix}{self._id_counter}{suffix}"

    async def _request(
        self,
        action: str,
        headers: Headers | None,
        timeout: float | None,
        *,
        is_list: bool = False,
        action_id: str | None = None,
    ) -> Any:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiNotConnected(f"AMI at {self.host}:{self.port} is not connected")
        action_id = action_id or self._next_id()
        data = encode_action(action, action_id, headers)  # ValueError before any state
        pending = _Pending(asyncio.get_running_loop().create_future(), is_list)
        self._pending[action_id] = pending
        try:
            async with asyncio.timeout(timeout):
                self._write(writer, data)
                await writer.drain()
                return await pending.future
        except TimeoutError:
            raise AmiTimeout(f"AMI {action} got no answer within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise AmiNotConnected(f"AMI link lost while sending {action}: {exc}") from exc
        finally:
            # ALWAYS forget it: panoramisk leaked one entry per timed-out action.
            self._pending.pop(action_id, None)
            if not self._pending:
                self._pending = {}  # a dict never shrinks: give a burst's table back
            if not pending.future.done():
                pending.future.cancel()

    def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Queue an action for the link; every action queued in the same loop iteration
        leaves in ONE write: one syscall and one TCP segment for, say, StartRecording's
        Setvar + Setvar + MixMonitor (profiled: a send per action was the largest single
        cost of a recording request). Order is kept; nothing waits longer than the
        current iteration."""
        if writer is not self._outbox_writer:
            self._flush()  # what is queued belongs to an older link: drop or send it first
            self._outbox_writer = writer
        self._outbox.append(data)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self._outbox = self._outbox, []
        writer, self._outbox_writer = self._outbox_writer, None
        if out and writer is not None and not writer.is_closing():
            writer.write(out[0] if len(out) == 1 else b"".join(out))

    def _fail_pending(self, exc: AmiError) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            entry.fail(exc)

    # -- the link ----------------------------------------------------------

    async def _supervise(self) -> None:
        """Connect, and reconnect forever, until close()."""
        loop = asyncio.get_running_loop()
        attempt = 0  # consecutive failures, for the backoff
        rejected = False  # the previous attempt was an auth failure
        failures = 0  # consecutive failures, for quieter logs
        first = True
        while True:
            if not first:
                self.reconnects += 1
            first = False
            self._up_since = None
            outcome = await self._run_session()
            if isinstance(outcome, AmiAuthError):
                self._log_rejected(outcome, again=rejected)
                rejected = True
                delay = self.auth_retry
            else:
                rejected = False  # a different failure: say so again next time
                if self._up_since is not None:
                    lived = loop.time() - self._up_since
                    self._log_lost_link(lived, outcome)
                    if lived > STABLE_LINK_SECONDS:
                        attempt = 0
                    failures = 0
                else:
                    failures += 1
                    self._log_failed_connect(outcome, failures)
                delay = self._backoff_delay(attempt)
                attempt = min(attempt + 1, 62)
            await asyncio.sleep(delay)

    async def _run_session(self) -> AmiAuthError | str:
        """Run one session to its end; return the login's rejection, or why the link went."""
        try:
            await self._session()
        except AmiAuthError as exc:
            return exc
        except (OSError, TimeoutError, AmiError, EOFError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception:  # a bug of ours: keep the link alive anyway
            log.exception("AMI session crashed; reconnecting")
            return "internal error"
        return "link closed"

    def _log_rejected(self, exc: AmiAuthError, *, again: bool) -> None:
        """Log a refused login: loudly the first time in a row, quietly after."""
        if not again:
            # ONE clear line, no secret, no traceback; panoramisk
            # retried every 2 s forever without saying why.
            log.error(
                "AMI login rejected for user %r at %s:%d: %s",
                self.username,
                self.host,
                self.port,
                exc,
            )
        else:
            log.debug("AMI login rejected again: %s", exc)

    def _log_lost_link(self, lived: float, reason: str) -> None:
        """Log the loss of a link that was logged in ``lived`` seconds."""
        log.warning(
            "AMI link to %s:%d lost after %.1fs (%s); reconnecting",
            self.host,
            self.port,
            lived,
            reason,
        )

    def _log_failed_connect(self, reason: str, failures: int) -> None:
        """Log a failure to connect or log in: the first and every tenth loudly."""
        level = logging.WARNING if failures == 1 or failures % 10 == 0 else logging.DEBUG
        log.log(
            level,
            "AMI connection to %s:%d failed (%s); attempt %d, retrying",
            self.host,
            self.port,
            reason,
            failures,
        )

    def _backoff_delay(self, attempt: int) -> float:
        """Seconds before the next try, after ``attempt`` failures in a row.

        Full jitter: spreads a herd of bridges restarting together.
        """
        return random.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def _session(self) -> None:
        """One connection, from TCP connect to its loss.  Cleans up after itself."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.connect_timeout
        )
        self._writer = writer
        parser = AmiParser()
        banner = asyncio.Event()
        read_task = asyncio.create_task(self._read_loop(reader, parser, banner), name="ami-reader")
        ping_task: asyncio.Task[None] | None = None
        try:
            await self._log_in(parser, banner, read_task)
            ping_task = asyncio.create_task(self._ping_loop(writer), name="ami-ping")
            await asyncio.wait({read_task, ping_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._end_session(writer, read_task, ping_task)

    async def _log_in(
        self, parser: AmiParser, banner: asyncio.Event, read_task: asyncio.Task[None]
    ) -> None:
        """Wait for the banner, then Login; AmiAuthError if Asterisk refuses it."""
        # Banner and Login answer within connect_timeout: a PBX that
        # accepts TCP but never logs us in must not hang us.
        async with asyncio.timeout(self.connect_timeout):
            await banner.wait()
            if read_task.done():
                raise AmiNotConnected("closed by Asterisk before its banner")
            if parser.banner and not parser.banner.startswith("Asterisk Call Manager"):
                log.warning("unexpected AMI banner %r", parser.banner)
            resp = await self._send_login()
        if not is_success(resp):
            raise AmiAuthError(resp.get("Message") or "no reason given")
        self._up_since = asyncio.get_running_loop().time()
        log.info(
            "AMI logged in to %s:%d as %r (%s)",
            self.host,
            self.port,
            self.username,
            parser.banner or "no banner",
        )

    async def _send_login(self) -> Message:
        """Send the Login action and return its response (success or not)."""
        self._login_id = self._next_id()
        try:
            resp: Message = await self._request(
                "Login",
                {
                    "Username": self.username,
                    "Secret": self.__secret,
                    "Events": self.events,
                },
                None,
                action_id=self._login_id,
            )
        except ValueError:
            raise AmiAuthError("username or secret contains control characters") from None
        return resp

    async def _end_session(
        self,
        writer: asyncio.StreamWriter,
        read_task: asyncio.Task[None],
        ping_task: asyncio.Task[None] | None,
    ) -> None:
        """Close the link and stop its tasks; fail what waits on it, tell the handlers."""
        was_connected = self._connected
        self._set_connected(False)
        self._login_id = None
        if ping_task is not None:
            ping_task.cancel()
        if self._closing and was_connected:
            # Polite goodbye so Asterisk logs a logoff, not a lost client.
            with contextlib.suppress(Exception):
                writer.write(encode_action("Logoff", self._next_id()))
            writer.close()
        else:
            writer.transport.abort()  # half-open links would linger on close()
        read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await read_task
        if ping_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ping_task
        self._writer = None
        self._fail_pending(AmiNotConnected("AMI link lost"))
        if was_connected:
            self._queue.put_nowait(_DISCONNECTED)

    async def _ping_loop(self, writer: asyncio.StreamWriter) -> None:
        """Watchdog: an unanswered Ping means a half-open link; drop it. Unless Asterisk
        answered other actions after the Ping left: then both directions work and it is
        only slow (it runs one connection's actions in order, and the Ping waits behind
        a backlog), and dropping the link would add a reconnect and a resync to an
        overloaded PBX. Events alone do not count: they flow even when our writes are
        lost. A frozen PBX or a half-open link answers nothing at all."""
        while True:
            await asyncio.sleep(self.ping_interval)
            sent = time.monotonic()
            try:
                await self._request("Ping", None, self.ping_timeout)
            except AmiTimeout:
                if self._last_answer > sent:
                    log.info(
                        "AMI at %s:%d answered no Ping within %.1fs but still answers "
                        "actions; keeping the link",
                        self.host,
                        self.port,
                        self.ping_timeout,
                    )
                    continue
                log.warning(
                    "AMI at %s:%d did not answer Ping within %.1fs; dropping the link",
                    self.host,
                    self.port,
                    self.ping_timeout,
                )
                writer.transport.abort()
                return
            except AmiNotConnected:
                return

    async def _read_loop(
        self, reader: asyncio.StreamReader, parser: AmiParser, banner: asyncio.Event
    ) -> None:
        garbage = 0
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    return
                for msg in parser.feed(data):
                    try:
                        self._route(msg)
                    except Exception:  # never let one message kill the link
                        log.exception("AMI message could not be routed: %r", msg)
                if parser.banner is not None:
                    banner.set()
                if parser.garbage != garbage:
                    log.debug("AMI: %d garbage lines so far", parser.garbage)
                    garbage = parser.garbage
        except (ConnectionError, OSError) as exc:
            log.debug("AMI read failed: %s", exc)
        finally:
            banner.set()  # wake a session still waiting for it
            self._fail_pending(AmiNotConnected("AMI link lost"))

    def _route(self, msg: Message) -> None:
        """Hand one message to whoever waits for it.  Runs in the reader."""
        action_id = msg.get("ActionID")
        # An Event may carry a Response header too (OriginateResponse does): it is an
        # event all the same, never the answer to an action.
        if "Response" in msg and "Event" not in msg:
            self._last_answer = time.monotonic()
            pending = self._pending.get(action_id) if action_id else None
            if action_id is not None and action_id == self._login_id and is_success(msg):
                # Queue the marker now, before any event read after it.
                self._set_connected(True)
                self._queue.put_nowait(_CONNECTED)
            if pending is None:
                # A late answer to an action that timed out, or not ours.
                log.debug("AMI response without a waiter: %r", action_id)
            elif not pending.is_list:
                pending.finish(msg)
            elif not is_success(msg):
                pending.finish((msg, []))
            else:
                pending.response = msg
            return
        if "Event" not in msg:
            log.debug("AMI message neither Response nor Event: %r", msg)
            return
        self.events_received += 1
        if action_id is not None:
            pending = self._pending.get(action_id)
            if pending is not None and pending.is_list:
                pending.events.append(msg)
                if msg.get("EventList", "").lower() == "complete":
                    pending.finish((pending.response or {}, pending.events))
                return
        self._queue.put_nowait(msg)

    def _set_connected(self, up: bool) -> None:
        self._connected = up
        if up:
            self._connected_event.set()
        else:
            self._connected_event.clear()

    # -- handlers, in one task -----------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            item = await self._queue.get()
            if item is _CONNECTED:
                for handler in list(self._connect_handlers):
                    await self._call(handler, (), "connect")
            elif item is _DISCONNECTED:
                for handler in list(self._disconnect_handlers):
                    await self._call(handler, (), "disconnect")
            elif isinstance(item, dict):
                name = item.get("Event", "?")
                for ev_handler in list(self._event_handlers):
                    await self._call(ev_handler, (item,), name)

    async def _call(self, fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being stopped (close())
            # A handler's own cancelled await must not stop the dispatcher.
            self.handler_errors += 1
            log.error("AMI handler %r was cancelled on %s", fn, what)
        except Exception:
            # Swallowed: one bad handler must not drop the link or later
            # events (panoramisk's reader died with it).
            self.handler_errors += 1
            log.exception("AMI handler %r failed on %s", fn, what)
