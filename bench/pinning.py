"""``bench.run --taskset BRIDGE:ASTERISK[:BENCH]``: the bridge, Asterisk (and the bench
process: its clients and in-process bridges) each on CPUs of their own, as ``taskset
-c`` / ``taskset -a -p`` would set them (``sched_setaffinity``, no binary needed).

On a 2-core machine the bridge and Asterisk otherwise take turns on the same cores;
pinned to one core each, neither waits for the other's time slice: the fair bound of
what the bridge costs next to the PBX (issue 15, "Done when")."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pinning", "cpu_list"]


def cpu_list(text: str) -> frozenset[int]:
    """``"0"``, ``"0,2"``, ``"0-3"`` (taskset -c's syntax) -> the CPUs, each one this
    machine has."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        first, last = int(lo), int(hi or lo)
        if first > last:
            raise ValueError(f"bad CPU range {part!r}")
        cpus.update(range(first, last + 1))
    have = os.sched_getaffinity(0)
    if not cpus or not cpus <= have:
        raise ValueError(f"CPUs {sorted(cpus)} are not all among this machine's {sorted(have)}")
    return frozenset(cpus)


@dataclass(frozen=True)
class Pinning:
    bridge: frozenset[int]
    asterisk: frozenset[int]
    bench: frozenset[int] | None = None

    @classmethod
    def parse(cls, text: str) -> Pinning:
        """``"0:1"`` (bridge on CPU 0, Asterisk on 1, the bench unpinned) or ``"0:1:0"``."""
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError("--taskset takes BRIDGE:ASTERISK[:BENCH] CPU lists, e.g. 0:1")
        bench = cpu_list(parts[2]) if len(parts) == 3 else None
        return cls(cpu_list(parts[0]), cpu_list(parts[1]), bench)

    def describe(self) -> str:
        def show(cpus: frozenset[int] | None) -> str:
            return "unpinned" if cpus is None else ",".join(map(str, sorted(cpus)))

        return (f"bridge on CPU {show(self.bridge)}, Asterisk on CPU {show(self.asterisk)}, "
                f"the bench's clients {show(self.bench)}")

    def as_json(self) -> dict[str, list[int] | None]:
        return {"bridge": sorted(self.bridge), "asterisk": sorted(self.asterisk),
                "bench": sorted(self.bench) if self.bench is not None else None}

    def apply(self, asterisk_pid: int | None) -> None:
        """Asterisk (every thread it has; later ones inherit from their creator) and the
        bench process. The bridge is pinned as it starts (`bridge_preexec`)."""
        if asterisk_pid is None:
            raise RuntimeError("--taskset: Asterisk's pid is not known")
        for task in Path(f"/proc/{asterisk_pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), self.asterisk)
            except ProcessLookupError:
                continue  # a thread that ended meanwhile
        if self.bench is not None:
            os.sched_setaffinity(0, self.bench)

    def bridge_preexec(self) -> Callable[[], None]:
        cpus = self.bridge
        return lambda: os.sched_setaffinity(0, cpus)
