"""Recording file names and formats, pure.

The dialplan's *1 subroutine (asterisk-conf/extensions.conf, [pbx-bridge-rec]) builds
the same names, so a recording lands in the same place whoever started it:

    <organization id>/<extension>/<YYYY-MM-DD>/<call id>-<view id>-<HHMMSS>.<wav|WAV>

relative to Asterisk's monitor folder (or under `recordings.directory` if configured).
Dates and times are UTC. The extension of the file picks the codec: `.wav` is 16-bit PCM,
`.WAV` is Asterisk's wav49 (GSM 6.10 in a WAVE file).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

FORMATS = {"wav": "wav", "wav49": "WAV"}
# What may appear in a path segment we build: the values come from our own directory and
# tracker, but they are checked again here because they end up in an AMI action.
_SAFE = re.compile(r"[0-9A-Za-z*#_.+-]{1,64}")


def file_suffix(fmt: str) -> str:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown recording format {fmt!r}") from None


def recording_path(
    *,
    organization_id: int,
    extension: str,
    call_id: str,
    view_id: str,
    fmt: str,
    started: float,
    base_dir: str = "",
) -> str:
    for value in (extension, call_id, view_id):
        if not _SAFE.fullmatch(value) or value in (".", ".."):
            raise ValueError(f"unsafe value for a recording path: {value!r}")
    when = datetime.fromtimestamp(int(started), UTC)
    name = (
        f"{organization_id}/{extension}/{when:%Y-%m-%d}/"
        f"{call_id}-{view_id}-{when:%H%M%S}.{file_suffix(fmt)}"
    )
    if base_dir:
        return f"{base_dir.rstrip('/')}/{name}"
    return name
