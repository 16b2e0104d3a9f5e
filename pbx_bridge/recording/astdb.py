"""Who records, written to AstDB for the dialplan's subroutine [pbx-bridge-rec].

Family ``pbx_bridge``: ``config/recdir`` = `recordings.directory` (if set), and one
``rec/<endpoint>`` = ``<format>,<organization id>,<extension>,<trigger>`` per device of
an extension that records on demand (trigger ``star1``: *1 may toggle it) or every call
(trigger ``always``: the dialplan starts MixMonitor itself when the device answers, so
"always" holds while the bridge is down; *1 is refused there). The *1 path reads the
first three fields as before.

Kept equal to the directory by difference (`PolicySync`, issue 16): the family is read
once per (re)connect (AMI ``DBGetTree``), then only the keys whose value changed are
written and the keys no longer wanted deleted; a directory change is diffed against what
the last sync left, without reading AstDB again. Other families are never touched. The
sync runs in the background: readiness never waits for it, and until the first one after
a (re)connect is done, *1 answers from what AstDB already held (the policy of the last
run: AstDB is persistent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.pbx.ami import AmiClient, AmiError, Message, is_success
from pbx_bridge.recording.naming import file_suffix
from pbx_bridge.recording.rules import on_demand, records_always
from pbx_bridge.recording.variables import ASTDB_FAMILY

__all__ = ["PolicyChanges", "PolicySync", "diff_policy", "expected_policy", "policy_value"]

log = logging.getLogger("pbx_bridge.recording")

# DBPut/DBDel actions in flight at once (one round trip each; pipelined on the link).
WINDOW = 64
# DBGetTree of a provider's family (500,000 keys) takes Asterisk seconds to list.
TREE_TIMEOUT = 120.0


def policy_value(fmt: str, organization_id: int, extension: str, trigger: str) -> str:
    """The AstDB value the subroutine reads:
    "<format>,<organization id>,<extension>,<star1|always>"."""
    file_suffix(fmt)
    if trigger not in ("star1", "always"):
        raise ValueError(f"unknown recording trigger {trigger!r}")
    return f"{fmt},{organization_id},{extension},{trigger}"


def expected_policy(
    directory: Directory, base_dir: str, extensions: Mapping[str, Extension] | None = None
) -> dict[str, str]:
    """The family's keys and values as the directory says they should be (what
    `PolicySync` writes; `pbx-bridge doctor` compares AstDB with it). ``extensions``:
    device -> extension of one PBX node's extensions, whose policy that node's AstDB
    gets (None: every extension of the directory). One snapshot, one pass: linear in the
    extensions."""
    snap = directory.rows.snapshot()
    policy = {"config/recdir": base_dir} if base_dir else {}
    devices = snap.by_device if extensions is None else extensions
    for device, ext in devices.items():
        if not (on_demand(ext) or records_always(ext)):
            continue
        owner = snap.users.get(ext.owner)
        org = snap.organizations.get(owner.organization) if owner and owner.organization else None
        if org is None:
            continue
        endpoint = device.split("/", 1)[1]
        policy[f"rec/{endpoint}"] = policy_value(
            ext.recording.format, org.id, ext.number, ext.recording.trigger
        )
    return policy


class PolicyChanges(NamedTuple):
    puts: dict[str, str]  # key -> value to write (new, or its value changed)
    deletes: list[str]  # keys AstDB holds that are not wanted any more


def diff_policy(have: Mapping[str, str], want: Mapping[str, str]) -> PolicyChanges:
    """What turns the family ``have`` into ``want``: linear, nothing for equal keys."""
    puts = {k: v for k, v in want.items() if have.get(k) != v}
    deletes = sorted(k for k in have if k not in want)
    return PolicyChanges(puts, deletes)


def tree_of(rows: list[Message], family: str) -> dict[str, str]:
    """DBGetTree's rows (``Key: /pbx_bridge/rec/...``) as the family's key -> value."""
    prefix = f"/{family}/"
    return {
        r["Key"].removeprefix(prefix): r.get("Val", "")
        for r in rows
        if r.get("Event") == "DBGetTreeResponse" and r.get("Key", "").startswith(prefix)
    }


@dataclass
class SyncCounts:
    """What the syncs did since start (read by /metrics and the tests)."""

    reads: int = 0  # DBGetTree of the family (one per (re)connect)
    puts: int = 0  # DBPut actions Asterisk accepted
    deletes: int = 0  # DBDel actions Asterisk accepted
    failed: int = 0  # actions refused or lost
    runs: int = 0  # syncs finished without a failure


class PolicySync:
    """Keeps one Asterisk's AstDB family equal to a wanted policy, by difference.

    ``want`` is asked at each run (the directory as it is then: a burst of changes costs
    one run). One instance per PBX link; `request` never blocks (the run is spawned, and
    runs again once more if asked while running).
    """

    def __init__(
        self,
        ami: AmiClient,
        want: Callable[[], Mapping[str, str]],
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        *,
        family: str = ASTDB_FAMILY,
    ) -> None:
        self._ami = ami
        self._want = want
        self._spawn = spawn
        self.family = family
        self.counts = SyncCounts()
        # What AstDB holds as far as we know (read, then kept as written); None: unknown,
        # read it first. Dropped on every (re)connect: Asterisk may have restarted.
        self._have: dict[str, str] | None = None
        self._epoch = 0
        self._asked = False
        self._running = False
        self.synced = asyncio.Event()  # set while AstDB is known to equal the last want

    def reconnected(self) -> None:
        """The link was (re)established: read the family again on the next run."""
        self._epoch += 1
        self._have = None
        self.synced.clear()

    def request(self) -> None:
        """Bring AstDB to the wanted policy, in the background."""
        self._asked = True
        self.synced.clear()
        if not self._running:
            self._running = True
            self._spawn(self._loop())

    async def _loop(self) -> None:
        try:
            while self._asked:
                self._asked = False
                try:
                    await self._run()
                except AmiError as exc:
                    self._have = None  # partly written, or the link fell: read it again
                    log.warning("could not write the recording policy to AstDB: %s", exc)
        finally:
            self._running = False

    async def _run(self) -> None:
        epoch = self._epoch
        have = self._have if self._have is not None else await self._read()
        changes = diff_policy(have, self._want())
        # Copy-on-write: a failed run leaves self._have as it was (or unknown).
        have = dict(have)
        failed = await self._apply(changes, have)
        if epoch != self._epoch:
            return  # reconnected meanwhile: the next run reads the family again
        self._have = None if failed else have
        if failed:
            log.warning("AstDB refused %d recording policy writes", failed)
            return
        self.counts.runs += 1
        if changes.puts or changes.deletes:
            log.info("AstDB recording policy: %d keys written, %d deleted",
                     len(changes.puts), len(changes.deletes))
        if not self._asked:
            self.synced.set()

    async def _read(self) -> dict[str, str]:
        resp, rows = await self._ami.send_list_action(
            "DBGetTree", {"Family": self.family}, timeout=TREE_TIMEOUT
        )
        self.counts.reads += 1
        if is_success(resp):
            return tree_of(rows, self.family)
        if "not found" in resp.get("Message", "").lower():
            return {}  # an empty family: Asterisk answers "Database entry not found"
        raise AmiError(f"DBGetTree refused: {resp.get('Message', 'error')}")

    async def _apply(self, changes: PolicyChanges, have: dict[str, str]) -> int:
        """Send the puts, then the deletes, ``WINDOW`` at a time; ``have`` follows what
        Asterisk accepted. Returns how many were refused."""
        ops: list[tuple[str, str | None]] = [*changes.puts.items()]
        ops += [(k, None) for k in changes.deletes]
        failed = 0
        for start in range(0, len(ops), WINDOW):
            window = ops[start:start + WINDOW]
            answers = await asyncio.gather(
                *(self._one(k, v) for k, v in window), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer  # the link fell: the caller reads the family again
            for (key, value), ok in zip(window, answers, strict=True):
                if not ok:
                    failed += 1
                elif value is None:
                    have.pop(key, None)
                else:
                    have[key] = value
        return failed

    async def _one(self, key: str, value: str | None) -> bool:
        if value is None:
            resp = await self._ami.send_action("DBDel", {"Family": self.family, "Key": key})
            # Already gone is what we wanted.
            ok = is_success(resp) or "not found" in resp.get("Message", "").lower()
            self.counts.deletes += ok
        else:
            resp = await self._ami.send_action(
                "DBPut", {"Family": self.family, "Key": key, "Val": value}
            )
            ok = is_success(resp)
            self.counts.puts += ok
        self.counts.failed += not ok
        return ok
