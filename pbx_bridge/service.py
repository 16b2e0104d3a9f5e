"""The bridge: one AMI connection feeding the call tracker, and the narrow door through
which recording actions go back to Asterisk.

Everything here is shell around the pure parts (`calls.tracker`, `recording.policy`,
`directory.access`): it owns the AMI client, resyncs on every (re)connect, writes the
tracker's channel-variable effects back, keeps AstDB's recording policy in step with the
directory, and serialises recording actions per view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pbx_bridge.calls.tracker import Call, Channel, Tracker, rec_value
from pbx_bridge.config import Settings
from pbx_bridge.directory import access
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient, AmiError, AmiNotConnected, AmiTimeout, is_success
from pbx_bridge.recording import auto, policy

log = logging.getLogger("pbx_bridge.service")

ASTDB_FAMILY = "pbx_bridge"
_REC_VAR = "ChanVariable(PBX_REC)"
# MixMonitorMute's answer when the channel has no MixMonitor (no audiohook to flag).
_NO_MIXMONITOR = "Cannot set mute flag"
RESYNC_INTERVAL = 300.0  # a periodic safety net against any event Asterisk never sent
# A refused or timed-out automatic ("always") start is retried after 5, 10, 20... s,
# at most a minute apart, for as long as the channel lives.
AUTO_RETRY_FIRST = 5.0
AUTO_RETRY_CAP = 60.0


class PbxUnavailable(Exception):
    """AMI is not connected or the state is not resynced yet (503 pbx_unavailable)."""


class PbxTimeout(Exception):
    """Asterisk did not answer in time (504 pbx_timeout)."""


class ViewState(Exception):
    """The view cannot be recorded now: not answered, or already gone (409)."""


class PbxRefused(Exception):
    """Asterisk answered an action with an error."""


@dataclass
class Metrics:
    recordings_started: int = 0
    recordings_failed: int = 0
    recordings_stopped: int = 0
    resyncs: int = 0


class Bridge:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        *,
        ami: AmiClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.directory = directory
        s = settings.ami
        self.ami = ami or AmiClient(
            s.host,
            s.port,
            s.username,
            s.secret.get_secret_value(),
            ping_interval=s.ping_interval,
            ping_timeout=s.ping_timeout,
            action_timeout=s.action_timeout,
            connect_timeout=s.connect_timeout,
            backoff_cap=s.backoff_cap,
            auth_retry=s.auth_retry,
        )
        self.clock = clock
        self.tracker = Tracker(self._device_map(), clock=clock)
        self._always = self._always_recorded()
        self._auto_tried: set[str] = set()  # uniqueids an automatic start was tried on
        self._auto_failures: dict[str, int] = {}  # uniqueid -> failed automatic starts
        self.metrics = Metrics()
        self.ready = False
        self._changed = asyncio.Condition()
        self._view_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._started: dict[tuple[str, str], int] = {}  # view -> second of its last start
        # view -> start time of a StartRecording that timed out: its actions may still run
        self._in_doubt: dict[tuple[str, str], float] = {}
        self._bg: set[asyncio.Task] = set()
        self._resync_task: asyncio.Task | None = None
        self.ami.add_event_handler(self._on_event)
        self.ami.add_connect_handler(self._on_connect)
        self.ami.add_disconnect_handler(self._on_disconnect)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.ami.start()
        self._resync_task = asyncio.create_task(self._periodic_resync())

    async def close(self) -> None:
        if self._resync_task:
            self._resync_task.cancel()
        for task in list(self._bg):
            task.cancel()
        await self.ami.close()
        self.ready = False

    def _device_map(self) -> dict[str, str]:
        return {dev: ext.number for dev, ext in self.directory.extensions_by_device().items()}

    def _always_recorded(self) -> dict[str, Extension]:
        return {e.number: e for e in self.directory.all_extensions() if auto.records_always(e)}

    def reload_directory(self) -> None:
        self.tracker.set_devices(self._device_map())
        self._always = self._always_recorded()
        # A setup switched to "always" (again) applies to the calls already up, whatever
        # was tried on them before; views that record already are left alone by due().
        self._auto_tried.clear()
        if self.ami.connected:
            self._spawn(self._sync_policy())
            self._record_always_sweep()

    # ------------------------------------------------------------------ AMI side
    async def _on_connect(self) -> None:
        self.ready = False
        await self.resync(check_recordings=True)
        await self._sync_policy()
        self.ready = True
        log.info("AMI ready: %d live calls after resync", len(self.tracker.calls))
        # Whatever was tried before the link dropped may have been lost with it.
        self._auto_tried.clear()
        self._record_always_sweep()

    def _on_disconnect(self) -> None:
        self.ready = False

    async def resync(self, *, check_recordings: bool = False) -> None:
        resp, items = await self.ami.send_list_action("CoreShowChannels")
        if not is_success(resp):
            raise AmiError(f"CoreShowChannels refused: {resp.get('Message')}")
        if check_recordings or self._in_doubt:
            # After a reconnect every PBX_REC is checked; otherwise those of views whose
            # start timed out (the reservation may stand without a MixMonitor behind it).
            items = [
                await self._checked_recording(ev)
                if check_recordings or self._doubtful(ev) else ev
                for ev in items
            ]
        self.tracker.set_devices(self._device_map())
        self.tracker.resync(items)
        self.metrics.resyncs += 1
        self._flush_effects()
        await self._notify()

    async def _checked_recording(self, ev: dict[str, str]) -> dict[str, str]:
        """PBX_REC on a channel only says a recording was *started* there. A link lost
        between the PBX_REC reservation and the MixMonitor action (or between
        StopMixMonitor and the release) leaves PBX_REC on a channel that records nothing;
        believing it would answer every later StartRecording "already recording" and
        lose the recording. So after a reconnect, ask Asterisk which of those channels
        really run a MixMonitor, and release the stale reservations."""
        channel = ev.get("Channel", "")
        if not ev.get(_REC_VAR) or not channel:
            return ev
        try:
            running = await self._runs_mixmonitor(channel)
        except AmiError:
            return ev  # cannot tell: trust PBX_REC
        if running is not False:
            return ev
        log.info("%s: PBX_REC set but no MixMonitor running; releasing it", channel)
        self._spawn(self._setvar(channel, "PBX_REC", ""))
        return {**ev, _REC_VAR: ""}

    def _doubtful(self, ev: dict[str, str]) -> bool:
        ext = self.tracker.extension_of(ev.get("Channel", ""))
        return ext is not None and (ev.get("Linkedid", ""), ext) in self._in_doubt

    async def _runs_mixmonitor(self, channel: str) -> bool | None:
        """Does Asterisk run a MixMonitor on the channel? Asked with `MixMonitorMute`
        State 0: a no-op on a running recording (nothing here ever mutes one), and the
        error "Cannot set mute flag" when there is none. The CLI's `mixmonitor list`
        would need the AMI `command` class, which is a shell (`channel originate ...
        application System`). None if the answer cannot be read (no such channel, no
        permission). AmiNotConnected / AmiTimeout propagate."""
        resp = await self.ami.send_action(
            "MixMonitorMute", {"Channel": channel, "Direction": "both", "State": "0"}
        )
        if is_success(resp):
            return True
        if _NO_MIXMONITOR in resp.get("Message", ""):
            return False
        return None

    async def _periodic_resync(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_INTERVAL)
            if self.ready:
                with contextlib.suppress(AmiError):
                    await self.resync()
                self._record_always_sweep()

    async def _on_event(self, ev: dict[str, str]) -> None:
        self.tracker.feed(ev)
        self._flush_effects()
        if self._always and self.ready:
            call = auto.touched_call(self.tracker, ev)
            if call is not None:
                self._record_always(call)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _flush_effects(self) -> None:
        for eff in self.tracker.take_effects():
            self._spawn(self._setvar(eff.channel, eff.variable, eff.value))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _setvar(self, channel: str, variable: str, value: str) -> None:
        try:
            await self.ami.send_action(
                "Setvar", {"Channel": channel, "Variable": variable, "Value": value}
            )
        except AmiError as exc:  # the channel may have hung up meanwhile
            log.debug("Setvar %s on %s failed: %s", variable, channel, exc)

    async def _sync_policy(self) -> None:
        """Write who may record with *1 to AstDB, for the dialplan subroutine."""
        try:
            await self.ami.send_action("DBDelTree", {"Family": ASTDB_FAMILY})
            base = self.settings.recordings.directory
            if base:
                await self.ami.send_action(
                    "DBPut", {"Family": ASTDB_FAMILY, "Key": "config/recdir", "Val": base}
                )
            for device, ext in self.directory.extensions_by_device().items():
                if not access.recording_allowed(ext):
                    continue
                org = self.directory.organization_of_extension(ext)
                if org is None:
                    continue
                endpoint = device.split("/", 1)[1]
                await self.ami.send_action(
                    "DBPut",
                    {
                        "Family": ASTDB_FAMILY,
                        "Key": f"rec/{endpoint}",
                        "Val": policy.policy_value(ext.recording.format, org.id, ext.number),
                    },
                )
        except AmiError as exc:
            log.warning("could not write the recording policy to AstDB: %s", exc)

    # ------------------------------------------------------------------ queries
    def require_ready(self) -> None:
        if not (self.ready and self.ami.connected):
            raise PbxUnavailable("the PBX is not connected")

    def calls_for(self, extensions: list[Extension]) -> list[Call]:
        seen: dict[str, Call] = {}
        for ext in extensions:
            for call in self.tracker.calls_of(ext.number):
                seen.setdefault(call.linkedid, call)
        return sorted(seen.values(), key=lambda c: (c.published, c.linkedid))

    # ------------------------------------------------------------------ recording
    def _lock(self, call: Call, extension: str) -> asyncio.Lock:
        key = (call.linkedid, extension)
        lock = self._view_locks.get(key)
        if lock is None:
            # Drop locks of calls that are gone so the map cannot grow without bound.
            if len(self._view_locks) > 4 * (len(self.tracker.calls) + 64):
                self._view_locks = {
                    k: v for k, v in self._view_locks.items()
                    if k[0] in self.tracker.calls or v.locked()
                }
                self._started = {
                    k: v for k, v in self._started.items() if k in self._view_locks
                }
                self._in_doubt = {
                    k: v for k, v in self._in_doubt.items() if k in self._view_locks
                }
            lock = self._view_locks[key] = asyncio.Lock()
        return lock

    def _view_channel(self, call: Call, extension: str) -> Channel:
        if call.linkedid not in self.tracker.calls:
            raise ViewState("the call has ended")
        ch = self.tracker.recording_channel(call, extension)
        if ch is None:
            if not call.channels_of(extension):
                raise ViewState("the view has hung up")
            raise ViewState("the view is not answered")
        return ch

    @staticmethod
    def _recording(call: Call, extension: str) -> bool:
        return any(c.recording is not None for c in call.channels_of(extension))

    async def start_recording(self, call: Call, ext: Extension, fmt: str) -> None:
        """Start MixMonitor on the view's channel; idempotent, one per view at most."""
        self.require_ready()
        async with self._lock(call, ext.number):
            if self._recording(call, ext.number):
                return
            ch = self._view_channel(call, ext.number)
            if await self._earlier_start_ran(call, ext, ch):
                return
            org = self.directory.organization_of_extension(ext)
            if org is None:
                raise ViewState("the extension has no organization")
            vid = call.view_ids[ext.number]
            now = await self._free_second((call.linkedid, ext.number))
            path = policy.recording_path(
                organization_id=org.id,
                extension=ext.number,
                call_id=call.id,
                view_id=vid,
                fmt=fmt,
                started=now,
                base_dir=self.settings.recordings.directory,
            )
            # PBX_REC first: it reserves the view on the channel itself, so a retry after
            # a timed-out MixMonitor (whose fate we cannot know) never starts a second
            # one, and a resync after a bridge restart still sees the recording.
            stamp = f"{now:.3f}"
            try:
                setvar = self.ami.send_action(
                    "Setvar",
                    {"Channel": ch.name, "Variable": "PBX_REC", "Value": rec_value(stamp, path)},
                )
                mixmon = self.ami.send_action("MixMonitor", {"Channel": ch.name, "File": path})
                _, resp = await asyncio.gather(setvar, mixmon)
            except AmiNotConnected as exc:
                self.metrics.recordings_failed += 1
                raise PbxUnavailable(str(exc)) from exc
            except AmiTimeout as exc:
                self.metrics.recordings_failed += 1
                self._in_doubt[(call.linkedid, ext.number)] = now
                raise PbxTimeout(str(exc)) from exc
            if not is_success(resp):
                self.metrics.recordings_failed += 1
                self._spawn(self._setvar(ch.name, "PBX_REC", ""))
                if ch.uniqueid not in self.tracker.channels:
                    raise ViewState("the view hung up")
                raise PbxRefused(resp.get("Message", "MixMonitor failed"))
            self.metrics.recordings_started += 1
            # Asterisk's Success is the confirmation: MixMonitor runs. Its MixMonitorStart
            # event comes later and carries this very stamp (PBX_REC), so the answer need
            # not wait for it (bench profile: the wait was up to a quarter of a start
            # under load).
            if ch.uniqueid in self.tracker.channels and ch.recording is None:
                ch.recording, ch.rec_file = float(stamp), path

    # ------------------------------------------------------------ recording "always"
    def _forget_gone_channels(self) -> None:
        live = self.tracker.channels.keys()
        self._auto_tried &= live
        self._auto_failures = {k: v for k, v in self._auto_failures.items() if k in live}

    def _record_always_sweep(self) -> None:
        self._forget_gone_channels()
        if self._always and self.ready:
            for call in list(self.tracker.calls.values()):
                self._record_always(call)

    def _record_always(self, call: Call) -> None:
        for ext, ch in auto.due(self.tracker, call, self._always, self._auto_tried):
            self._auto_tried.add(ch.uniqueid)
            self._spawn(self._start_always(call, self._always[ext], ch))

    async def _start_always(self, call: Call, ext: Extension, ch: Channel) -> None:
        try:
            await self.start_recording(call, ext, ext.recording.format)
        except (PbxUnavailable, PbxTimeout, ViewState, PbxRefused, AmiError) as exc:
            failures = self._auto_failures.get(ch.uniqueid, 0) + 1
            self._auto_failures[ch.uniqueid] = failures
            delay = min(AUTO_RETRY_CAP, AUTO_RETRY_FIRST * 2 ** (failures - 1))
            log.warning(
                "recording always: %s (%s) not started: %s; retrying in %.0f s",
                ext.number, ch.name, exc, delay,
            )
            await asyncio.sleep(delay)
            # Retry while the channel lives: a mandatory recording must not stay lost
            # to one refused or timed-out start (after a timeout, start_recording asks
            # Asterisk first, so a start that did run is never doubled).
            self._auto_tried.discard(ch.uniqueid)
            current = self.tracker.calls.get(ch.linkedid)
            if current is not None and self.ready:
                self._record_always(current)
        else:
            self._auto_failures.pop(ch.uniqueid, None)
            log.info("recording always: started on %s (%s)", ext.number, ch.name)
        # Bounded between sweeps too (they come every RESYNC_INTERVAL).
        if len(self._auto_tried) > 4 * len(self.tracker.channels) + 64:
            self._forget_gone_channels()

    async def _earlier_start_ran(self, call: Call, ext: Extension, ch: Channel) -> bool:
        """After a StartRecording timed out, its Setvar/MixMonitor actions may still be
        queued in a slow Asterisk, which runs them in order: starting again blindly would
        queue a second MixMonitor behind the first. So ask Asterisk first (answered only
        after whatever is queued before): recording already -> nothing to start; no
        answer -> 504 again, and nothing new queued."""
        view = (call.linkedid, ext.number)
        if view not in self._in_doubt:
            return False
        try:
            running = await self._runs_mixmonitor(ch.name)
            if running is None:
                resp = await self.ami.send_action(
                    "Getvar", {"Channel": ch.name, "Variable": "PBX_REC"}
                )
                running = bool(resp.get("Value"))
        except AmiNotConnected as exc:
            raise PbxUnavailable(str(exc)) from exc
        except AmiTimeout as exc:
            raise PbxTimeout(str(exc)) from exc
        started = self._in_doubt.pop(view)
        if running and ch.recording is None:
            ch.recording = started
        return running

    async def _free_second(self, view: tuple[str, str]) -> float:
        """A start time in a later second than the view's previous start. File names
        carry the start second (HHMMSS) and MixMonitor truncates an existing file, so a
        view started, stopped and started again within one second would overwrite its
        previous recording. Waits (under the view's lock) at most one second."""
        now = self.clock()
        last = self._started.get(view)
        if last is not None and int(now) <= last:
            await asyncio.sleep(min(1.0, last + 1 - now))
            now = max(self.clock(), last + 1.0)
        self._started[view] = int(now)
        return now

    async def stop_recording(self, call: Call, ext: Extension) -> None:
        self.require_ready()
        async with self._lock(call, ext.number):
            chans = [c for c in call.channels_of(ext.number) if c.recording is not None]
            if not chans:
                return
            for ch in chans:
                try:
                    # Pipelined, like the start: Asterisk runs one connection's actions in
                    # the order they arrive, so this is the same sequence in one round trip.
                    resp, _ = await asyncio.gather(
                        self.ami.send_action("StopMixMonitor", {"Channel": ch.name}),
                        self.ami.send_action(
                            "Setvar", {"Channel": ch.name, "Variable": "PBX_REC", "Value": ""}
                        ),
                    )
                except AmiNotConnected as exc:
                    raise PbxUnavailable(str(exc)) from exc
                except AmiTimeout as exc:
                    raise PbxTimeout(str(exc)) from exc
                if not is_success(resp) and ch.uniqueid in self.tracker.channels:
                    # Nothing to stop on that channel: the tracker was behind. Trust Asterisk.
                    log.info("StopMixMonitor on %s: %s", ch.name, resp.get("Message"))
                self.metrics.recordings_stopped += 1
                await self._wait_until(lambda c=ch: c.recording is None or
                                       c.uniqueid not in self.tracker.channels)
                ch.recording = None

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        timeout = self.settings.ami.action_timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(predicate)
