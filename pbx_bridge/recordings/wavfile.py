"""What a finished recording file holds: size, duration, SHA-256, or why it is unusable.

Blocking file I/O: call it off the event loop (``asyncio.to_thread``). The file is read
in chunks, never whole. Asterisk's MixMonitor writes RIFF/WAVE: ``.wav`` 16-bit PCM
(8 kHz for the phones here), ``.WAV`` wav49 (GSM 6.10, 65 bytes per 320 samples, with a
``fact`` chunk holding the sample count).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["FileFacts", "inspect"]

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_GSM610 = 0x0031
_CHUNK = 1 << 16
_MAX_CHUNKS = 64  # a WAVE header with more chunks than this is not MixMonitor's


@dataclass(frozen=True, slots=True)
class FileFacts:
    """``missing``: no file. ``reason``: set when the file is unusable (state failed)."""

    size: int = 0
    duration: float = 0.0
    sha256: str = ""
    missing: bool = False
    reason: str | None = None


def inspect(path: Path) -> FileFacts:
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            duration, reason = _duration(f, size)
            f.seek(0)
            digest = hashlib.sha256()
            while block := f.read(_CHUNK):
                digest.update(block)
    except FileNotFoundError:
        return FileFacts(missing=True)
    except OSError as exc:
        return FileFacts(reason=f"unreadable: {exc.strerror or exc}")
    return FileFacts(size, round(duration, 3), digest.hexdigest(), reason=reason)


def _duration(f: BinaryIO, size: int) -> tuple[float, str | None]:
    """(seconds of audio, None) or (0, why the file is unusable)."""
    head = f.read(12)
    if len(head) < 12:
        return 0.0, "shorter than its header"
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0, "not a RIFF/WAVE file"
    fmt: tuple[int, int, int] | None = None  # (tag, rate, byte rate)
    fact_samples: int | None = None
    for _ in range(_MAX_CHUNKS):
        chunk = f.read(8)
        if len(chunk) < 8:
            return 0.0, "shorter than its header"
        cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            # The header's length may be stale (a file cut short): trust the bytes there.
            available = max(0, size - f.tell())
            return _seconds(fmt, fact_samples, min(length, available) or available)
        body = f.read(length + (length & 1))
        if len(body) < length:
            return 0.0, "shorter than its header"
        if cid == b"fmt " and length >= 16:
            tag, _channels, rate, byte_rate = struct.unpack_from("<HHII", body)
            fmt = (tag, rate, byte_rate)
        elif cid == b"fact" and length >= 4:
            fact_samples = struct.unpack_from("<I", body)[0]
    return 0.0, "no data chunk"


def _seconds(
    fmt: tuple[int, int, int] | None, fact_samples: int | None, data_len: int
) -> tuple[float, str | None]:
    if fmt is None:
        return 0.0, "no fmt chunk before the audio"
    tag, rate, byte_rate = fmt
    if data_len <= 0:
        return 0.0, "no audio"
    if tag == WAVE_FORMAT_PCM and byte_rate > 0:
        return data_len / byte_rate, None
    if tag == WAVE_FORMAT_GSM610 and rate > 0:
        samples = fact_samples if fact_samples else data_len // 65 * 320
        if samples <= 0:
            return 0.0, "no audio"
        return samples / rate, None
    return 0.0, f"unsupported WAVE format {tag:#06x}"
