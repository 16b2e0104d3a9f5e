"""Open what Asterisk wrote and say what is in it: container, codec, length, loudness,
and whose audio it holds.

PCM WAV files are read with the standard library; GSM 6.10 (wav49, `.WAV`) files are
checked from their header and decoded with the sandbox root's sox.

Content: every test phone sends its own sine tone (`Phone.tone_hz`), the public number
7778899 a 1004 Hz tone (Milliwatt) and 7778888 speech. `tone_share` says which part of a
file's energy is a given frequency (Goertzel over short Hann-windowed blocks, so a few
hertz of codec or clock drift do not matter), which shows both directions of a call are in
a recording (CONTRACT section 4), not just that something in it is loud."""

from __future__ import annotations

import array
import asyncio
import math
import struct
import subprocess
import time
from dataclasses import dataclass, field
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
    samples: array.array = field(repr=False, default_factory=lambda: array.array("h"))

    @property
    def codec(self) -> str:
        return {WAVE_FORMAT_PCM: "pcm", WAVE_FORMAT_GSM610: "gsm"}.get(self.format_tag, "?")


def _chunks(data: bytes):
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == b"data" and size == 0:
            size = len(data) - pos - 8  # a file still being written: sizes come at close
        yield cid, data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def _samples(pcm: bytes) -> array.array:
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    return samples


def _stats(samples: array.array) -> tuple[float, int]:
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
        samples = _samples(body)
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
        samples = _samples(pcm)
    else:
        raise AssertionError(f"{path}: unexpected WAVE format tag {tag:#06x}")
    rms, peak = _stats(samples)
    return WavInfo(tag, channels, rate, bits, duration, rms, peak, samples)


async def wait_file_complete(path: Path, timeout: float = 10.0, min_size: int = 61) -> None:
    """Wait until MixMonitor has finished the file (it stops growing once closed).
    `min_size=44`: a bare header will do (a recording stopped as soon as it started)."""
    deadline = time.monotonic() + timeout
    last = -2
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size >= min_size and size == last:
            return
        last = size
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path} not written and closed within {timeout} s")


# ------------------------------------------------------------------------ content
BLOCK_SECONDS = 0.04  # 40 ms: 25 Hz bins, short enough to follow speech


def _block_tone(block: array.array | list[int], rate: int, hz: float) -> tuple[float, float]:
    """(RMS of the `hz` component, RMS of the whole block) of one block (Hann window,
    Goertzel). A pure sine of amplitude A at `hz` gives (A/sqrt 2, A/sqrt 2)."""
    n = len(block)
    coeff = 2.0 * math.cos(2.0 * math.pi * hz / rate)
    s1 = s2 = 0.0
    wsum = energy = 0.0
    for i, x in enumerate(block):
        w = 0.5 - 0.5 * math.cos(2.0 * math.pi * i / (n - 1))
        wsum += w
        energy += x * x
        s0 = w * x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2  # |X(hz)|^2 of the windowed block
    amplitude = 2.0 * math.sqrt(max(power, 0.0)) / wsum
    return amplitude / math.sqrt(2.0), math.sqrt(energy / n)


@dataclass
class ToneReport:
    """How present one frequency is in a stretch of audio, block by block."""

    hz: float
    blocks: int
    present: float  # share of blocks where the tone's RMS is at least `min_rms`
    share: float  # share of all the audio's energy that is this tone
    rest_rms: float  # RMS of everything but this tone (the other party, for a phone's tone)
    rest_present: float  # share of blocks where that rest is there (same test as the tone)


def tone_report(
    samples: array.array | list[int], hz: float, rate: int = 8000, min_rms: float = 100.0,
    min_ratio: float = 0.2, skip_seconds: float = 0.0,
) -> ToneReport:
    """Is `hz` in the audio, and how much else is there? A block holds the tone when its
    component is at least `min_rms` and at least `min_ratio` of the block's RMS (speech
    has some energy in any 25 Hz band, but little of its total in one: the phone's sine,
    mixed with the other party, is a good part of every block). `skip_seconds` leaves
    out the start (a call's first packets, before both directions flow)."""
    size = int(rate * BLOCK_SECONDS)
    start = int(rate * skip_seconds)
    blocks = present = rest_present = 0
    tone_energy = all_energy = 0.0
    for pos in range(start, len(samples) - size + 1, size):
        tone, whole = _block_tone(samples[pos : pos + size], rate, hz)
        rest = math.sqrt(max(whole * whole - tone * tone, 0.0))
        blocks += 1
        present += tone >= max(min_rms, min_ratio * whole)
        rest_present += rest >= max(min_rms, min_ratio * whole)
        tone_energy += tone * tone
        all_energy += whole * whole
    if not blocks:
        return ToneReport(hz, 0, 0.0, 0.0, 0.0, 0.0)
    return ToneReport(
        hz=hz,
        blocks=blocks,
        present=present / blocks,
        share=tone_energy / all_energy if all_energy else 0.0,
        rest_rms=math.sqrt(max(all_energy - tone_energy, 0.0) / blocks),
        rest_present=rest_present / blocks,
    )


# A sine sent for the whole call is in (nearly) every block of a recording of it; the
# margin is for the first and last packets and a jitter buffer's gaps.
TONE_PRESENT = 0.8
# Speech has pauses, and mixed with a phone's loud sine its quiet syllables are under the
# `min_ratio` bar: a recording of a call to 7778888 showed it in 53 % of blocks, a
# one-direction file (MixMonitor r()) in 0 %, what the phone heard in 80 %.
SPEECH_PRESENT = 0.25


def assert_tone(samples: array.array | list[int], hz: float, what: str,
                present: float = TONE_PRESENT, **kw: float) -> None:
    report = tone_report(samples, hz, **kw)
    assert report.blocks > 0, f"{what}: no audio"
    assert report.present >= present, f"{what}: no steady {hz} Hz tone: {report}"


def assert_no_tone(samples: array.array | list[int], hz: float, what: str, **kw: float) -> None:
    report = tone_report(samples, hz, **kw)
    assert report.present < 1 - TONE_PRESENT, f"{what}: a {hz} Hz tone is there: {report}"


def assert_both_directions(
    samples: array.array | list[int], own_hz: float, what: str,
    other_hz: float | None = None, present: float = TONE_PRESENT, **kw: float,
) -> None:
    """A recording of a call holds the phone's own tone (what it sent) *and* the other
    party: its tone (`other_hz`) or, for speech, audio that is not the phone's tone for a
    good part of the time. (`present`: lower under heavy load, where a starved jitter
    buffer drops frames.)"""
    assert_tone(samples, own_hz, f"{what} (own side)", present, **kw)
    if other_hz is not None:
        assert_tone(samples, other_hz, f"{what} (other side)", present, **kw)
    else:
        assert_speech(samples, own_hz, what, **kw)


def assert_speech(samples: array.array | list[int], own_hz: float, what: str,
                  **kw: float) -> None:
    """Audio other than the phone's tone, for a good part of the time (7778888's speech)."""
    report = tone_report(samples, own_hz, **kw)
    assert report.rest_present >= SPEECH_PRESENT, f"{what}: nothing but the own tone: {report}"


def assert_heard(samples: array.array | list[int], own_hz: float, what: str,
                 other_hz: float | None = None) -> None:
    """What a phone heard (`Phone.heard_file`): the other party (its tone, or for speech
    audio that is not the phone's own tone), and not the phone's own tone (no echo)."""
    assert_no_tone(samples, own_hz, f"{what} heard itself")
    if other_hz is not None:
        assert_tone(samples, other_hz, f"{what} heard the other side")
    else:
        report = tone_report(samples, own_hz)
        assert report.rest_present >= SPEECH_PRESENT, f"{what} heard nothing: {report}"


def assert_length(info: WavInfo, slept: float, recorded: float) -> None:
    """The file covers the recording: at least half of the time the test waited with it
    running (a loaded machine may lose a few frames, never most of them), and no more
    than the stopwatch around start and stop allows (audio comes in real time) plus a
    second of slack. Not a performance figure: a behaviour bound with real slack."""
    assert slept / 2 <= info.duration <= recorded + 1.0, (info.duration, slept, recorded)


async def recording_content(
    path: Path, own_hz: float, other_hz: float | None = None,
    sandbox_root: Path | None = None,
) -> WavInfo:
    """Wait for the finished file, open it and check that it holds both directions."""
    await wait_file_complete(path)
    info = inspect_wav(path, sandbox_root)
    assert_both_directions(info.samples, own_hz, str(path.name), other_hz)
    return info


# ------------------------------------------------------------------------ silence
SILENCE_WINDOW = 0.1  # seconds: the RMS windows a pause's silence is measured in


def window_rms(samples: array.array | list[int], rate: int = 8000,
               window: float = SILENCE_WINDOW) -> list[float]:
    """RMS of each whole window of `window` seconds, in order."""
    size = int(rate * window)
    return [
        math.sqrt(sum(x * x for x in samples[i : i + size]) / size)
        for i in range(0, len(samples) - size + 1, size)
    ]


def silent_runs(rms: list[float], threshold: float = 1.0) -> list[tuple[int, int]]:
    """(first, end) window indexes of each run of windows under `threshold`. A muted
    MixMonitor writes exact zeros (PCM: RMS 0; GSM decodes them to a faint hiss, still
    far under a live call with two tones, near 19,000)."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, value in enumerate([*rms, math.inf]):
        if value < threshold and start is None:
            start = i
        elif value >= threshold and start is not None:
            runs.append((start, i))
            start = None
    return runs
