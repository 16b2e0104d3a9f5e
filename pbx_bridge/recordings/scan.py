"""Walking the recordings folders for the reconciler (reconcile.py): blocking, so it runs
in a thread.

Cheap on large folders: one ``scandir`` per directory, whose entry types need no
``stat``; only files named by our scheme are ``stat``-ed (for their time), and none is
opened here. Symbolic links are never followed, to a file or a directory: a link cannot
make the catalog read, serve or delete something outside the folders.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

from pbx_bridge.config import RecordingsSettings
from pbx_bridge.recordings.reconcile import Folder, Scan, parse_name

__all__ = ["folders", "scan"]

log = logging.getLogger("pbx_bridge.recordings")


def folders(settings: RecordingsSettings) -> list[Folder]:
    """The folders host_path (feature.py) accepts: ``[recordings] directory`` when
    absolute (first: its files carry absolute names), then the monitor folder."""
    out = []
    if settings.directory.startswith("/"):
        root = settings.host_root.rstrip("/")
        out.append(Folder(Path(root + settings.directory), asterisk=settings.directory))
    out.append(Folder(Path(settings.monitor_dir)))
    return out


def scan(where: list[Folder]) -> Scan:
    result = Scan()
    for folder in where:
        if _walk(folder, result):
            result.complete.append(folder.host)
    return result


def _walk(folder: Folder, result: Scan) -> bool:
    """Add the folder's files to ``result``; False when some of it could not be read."""
    if not folder.host.is_dir():
        log.warning("recordings folder %s is not there: nothing in it is reconciled",
                    folder.host)
        return False
    whole = True
    stack = [folder.host]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        _add_file(folder, Path(entry.path), result)
        except OSError as exc:
            log.warning("recordings folder %s: cannot read %s: %s", folder.host, directory,
                        exc.strerror or exc)
            whole = False
    return whole


def _add_file(folder: Folder, path: Path, result: Scan) -> None:
    key = str(path)
    if key in result.present:  # a folder inside another: seen already
        return
    result.present.add(key)
    relative = PurePosixPath(path.relative_to(folder.host).as_posix())
    if len(relative.parts) < 4 or not relative.name.lower().endswith(".wav"):
        return
    try:
        mtime = os.stat(path, follow_symlinks=False).st_mtime
    except OSError:
        return  # gone between the listing and now
    found = parse_name(folder, relative, mtime)
    if found is not None:
        result.found.append(found)
