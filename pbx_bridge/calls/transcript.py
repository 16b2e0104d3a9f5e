"""AMI event transcripts: one event's headers per line, as a JSON object.

The same reader serves `pbx-bridge replay`, the unit tests (which replay transcripts
captured from the real sandbox Asterisk) and the benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO


class TranscriptError(ValueError):
    pass


def parse_lines(lines: Iterable[str], source: str = "<input>") -> Iterator[dict[str, str]]:
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TranscriptError(f"{source}:{n}: not JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in obj.items()
        ):
            raise TranscriptError(f"{source}:{n}: an event is an object of string headers")
        yield obj


def read_events(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(parse_lines(fh, str(path)))


def write_events(events: Iterable[dict[str, str]], out: IO[str]) -> None:
    for ev in events:
        out.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")
