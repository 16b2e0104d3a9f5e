"""The recording content checks of tests/support/audio.py, on synthetic files: they
find each party's tone, and they fail on a file that holds one direction only (what a
MixMonitor with the `r()`/`t()` options or on the wrong leg writes), so the e2e tests
that use them can fail."""

from __future__ import annotations

import math
import random
import wave
from pathlib import Path

import pytest

from tests.support.audio import (
    assert_both_directions,
    assert_no_tone,
    assert_tone,
    inspect_wav,
    tone_report,
)

RATE = 8000


def _sine(hz: float, seconds: float, amplitude: float = 6000.0) -> list[float]:
    return [amplitude * math.sin(2 * math.pi * hz * i / RATE) for i in range(int(seconds * RATE))]


def _speech_like(seconds: float, seed: int = 7) -> list[float]:
    """Noise in syllable-long bursts with pauses: broadband, loud, never a steady tone."""
    rng = random.Random(seed)
    out: list[float] = []
    while len(out) < seconds * RATE:
        burst = int(RATE * rng.uniform(0.1, 0.3))
        level = rng.uniform(2000, 8000)
        out += [rng.gauss(0, level) for _ in range(burst)]
        out += [rng.gauss(0, 20) for _ in range(int(RATE * rng.uniform(0.05, 0.15)))]
    return out[: int(seconds * RATE)]


def _mix(*parts: list[float]) -> list[int]:
    return [max(-32768, min(32767, round(sum(xs)))) for xs in zip(*parts, strict=False)]


def _write(path: Path, samples: list[int]) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    return path


def test_a_two_phone_recording_holds_both_tones(tmp_path: Path) -> None:
    path = _write(tmp_path / "both.wav", _mix(_sine(600, 2.0), _sine(800, 2.0, 3000)))
    info = inspect_wav(path)
    assert info.duration == pytest.approx(2.0)
    assert_both_directions(info.samples, 600, "both", other_hz=800)
    assert_both_directions(info.samples, 800, "both", other_hz=600)
    assert_no_tone(info.samples, 440, "both")


def test_a_one_direction_recording_fails_the_both_directions_check(tmp_path: Path) -> None:
    """The negative control: MixMonitor(file,r) records only what the channel receives,
    (file,t) only what it sends: one tone, loud enough for every RMS check there was."""
    info = inspect_wav(_write(tmp_path / "one.wav", _mix(_sine(600, 2.0))))
    assert info.rms > 100 and info.peak > 1000  # the old checks pass on it
    assert_tone(info.samples, 600, "one")
    with pytest.raises(AssertionError, match="other side"):
        assert_both_directions(info.samples, 600, "one", other_hz=800)
    with pytest.raises(AssertionError, match="own side"):
        assert_both_directions(info.samples, 800, "one", other_hz=600)
    with pytest.raises(AssertionError, match="nothing but the own tone"):
        assert_both_directions(info.samples, 600, "one")  # a call to the speech number


def test_speech_and_a_tone_are_both_directions_speech_alone_is_not(tmp_path: Path) -> None:
    speech = _speech_like(3.0)
    both = inspect_wav(_write(tmp_path / "call.wav", _mix(_sine(600, 3.0, 4000), speech)))
    assert_both_directions(both.samples, 600, "phone and speech")
    # Asterisk's playback alone is loud, but the phone's side is missing: caught.
    alone = inspect_wav(_write(tmp_path / "speech.wav", _mix(speech)))
    assert alone.rms > 100
    with pytest.raises(AssertionError, match="own side"):
        assert_both_directions(alone.samples, 600, "speech alone")


def test_a_few_hertz_of_drift_still_count_and_a_neighbour_tone_does_not() -> None:
    drifted = _mix(_sine(1000, 1.0))  # Milliwatt: 1000 or 1004 Hz depending on the version
    assert tone_report(drifted, 1004).present == 1.0
    assert tone_report(_mix(_sine(600, 1.0)), 440).present == 0.0


def test_a_file_still_being_written_is_read_to_its_end(tmp_path: Path) -> None:
    """baresip's heard.wav carries its sizes only once closed; while open they are 0."""
    path = _write(tmp_path / "open.wav", _mix(_sine(440, 1.0)))
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    data[pos + 4 : pos + 8] = (0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    info = inspect_wav(path)
    assert info.duration == pytest.approx(1.0)
    assert_tone(info.samples, 440, "open file")
