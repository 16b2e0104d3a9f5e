"""Open what Asterisk wrote and say what is in it: container, codec, length, loudness.

PCM WAV files are read with the standard library; GSM 6.10 (wav49, `.WAV`) files are
checked from their header and decoded with the sandbox root's sox for the loudness."""

from __future__ import annotations

import array
import asyncio
import math
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_GSM610 = 0x0031


@dataclass
class WavInfo:
    format_tag: int
    channels: int
    sample_rate: int
    bits_per_sample: int
    duration: float
    rms: float  # of the decoded 16-bit samples; 0 means digital silence
    peak: int

    @property
    def codec(self) -> str:
        return {WAVE_FORMAT_PCM: "pcm", WAVE_FORMAT_GSM610: "gsm"}.get(self.format_tag, "?")


def _chunks(data: bytes):
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        yield cid, data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def _stats(pcm: bytes) -> tuple[float, int]:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0, 0
    peak = max(abs(s) for s in samples)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return rms, peak


def inspect_wav(path: Path, sandbox_root: Path | None = None) -> WavInfo:
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AssertionError(f"{path} is not a RIFF/WAVE file")
    fmt = next((body for cid, body in _chunks(data) if cid == b"fmt "), None)
    body = next((body for cid, body in _chunks(data) if cid == b"data"), b"")
    if fmt is None:
        raise AssertionError(f"{path} has no fmt chunk")
    tag, channels, rate, byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == WAVE_FORMAT_PCM:
        duration = len(body) / byte_rate
        rms, peak = _stats(body)
    elif tag == WAVE_FORMAT_GSM610:
        # 65 bytes hold two GSM frames = 320 samples (the Microsoft "WAV49" packing).
        duration = (len(body) // 65) * 320 / rate
        if sandbox_root is None:
            raise AssertionError("decoding GSM needs the sandbox root's sox")
        inner = "/" + str(path.relative_to(sandbox_root))
        pcm = subprocess.run(
            ["chroot", str(sandbox_root), "sox", inner, "-t", "raw", "-e", "signed",
             "-b", "16", "-c", "1", "-"],
            capture_output=True, check=True, timeout=30,
        ).stdout
        rms, peak = _stats(pcm)
    else:
        raise AssertionError(f"{path}: unexpected WAVE format tag {tag:#06x}")
    return WavInfo(tag, channels, rate, bits, duration, rms, peak)


async def wait_file_complete(path: Path, timeout: float = 10.0) -> None:
    """Wait until MixMonitor has finished the file (it stops growing once closed)."""
    deadline = time.monotonic() + timeout
    last = -2
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size > 60 and size == last:
            return
        last = size
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path} not written and closed within {timeout} s")
