"""CLI commands for administrators: ``recordings list|show|export|sweep``.

They work on the database directly (``[database] url``, the settings every command
reads), so they run whether the bridge serves or not; ``sweep`` deletes files where the
catalog says they are (``host_path``: run it on the host that serves). Errors are one
line (``pbx-bridge: error: ...``) and exit 1.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from typing import Any

import orjson

from pbx_bridge.calls.model import iso
from pbx_bridge.commands import Subcommands, add_command, add_group
from pbx_bridge.directory.cli import open_directory
from pbx_bridge.directory.models import is_extension_number
from pbx_bridge.directory.store import Directory
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.retention import ended
from pbx_bridge.recordings.store import CatalogFilter, RecordingStore
from pbx_bridge.recordings.sweep import Sweeper

__all__ = ["register"]

_STATES = ("recording", "paused", "completed", "missing", "failed")
_TIMES = ("started", "stopped")


class RecordingsCliError(Exception):
    """A refusal, one line for ``pbx-bridge: error:``."""


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text[:40]!r}")
    return int(text)


def _extension(text: str) -> str:
    if not is_extension_number(text):
        raise argparse.ArgumentTypeError(f"not an extension number: {text[:40]!r}")
    return text


def _record(row: RecordingRow) -> dict[str, Any]:
    """A row as the commands print it: every column, times in ISO 8601 (UTC)."""
    data = dataclasses.asdict(row)
    for name in _TIMES:
        data[name] = iso(data[name])
    data["paused"] = [{"from": iso(a), "to": iso(b)} for a, b in row.paused]
    return data


def _filter(args: argparse.Namespace) -> CatalogFilter:
    return CatalogFilter(args.organization, args.extension, args.state, args.limit)


def _store(directory: Directory) -> RecordingStore:
    return RecordingStore(directory.database)


# --------------------------------------------------------------------------- commands


_LIST_ROW = "{:18}  {:9}  {:>5}  {:12}  {:25}  {:>9}  {:>10}  {}"


def _list(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        rows = _store(directory).select(_filter(args))
    print(_LIST_ROW.format("ID", "STATE", "ORG", "EXTENSION", "STARTED", "DURATION", "SIZE",
                           "STARTED_BY"))
    for r in rows:
        duration = f"{r.duration:.2f}" if r.duration is not None else "-"
        size = str(r.size) if r.size is not None else "-"
        print(_LIST_ROW.format(r.id, r.state, r.organization or "-", r.extension,
                               iso(r.started) or "", duration, size, r.started_by))
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        row = _store(directory).get(args.id)
    if row is None:
        raise RecordingsCliError(f"no recording with id {args.id[:40]!r}")
    print(orjson.dumps(_record(row), option=orjson.OPT_INDENT_2).decode())
    return 0


def _export(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        rows = [_record(r) for r in _store(directory).select(_filter(args))]
    if args.format == "jsonl":
        for record in rows:
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
        return 0
    fields = [f.name for f in dataclasses.fields(RecordingRow)]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in rows:
        record["paused"] = orjson.dumps(record["paused"]).decode()
        writer.writerow(record)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        sweeper = Sweeper(_store(directory), directory)
        if args.dry_run:
            due = sweeper.due()
            for r in due:
                print(f"{r.id}  {r.state:9}  org {r.organization}  {r.extension}  "
                      f"ended {iso(ended(r))}  {r.size if r.size is not None else 0} bytes")
            size = sum(r.size or 0 for r in due)
            print(f"dry run: {len(due)} expired recordings would be deleted ({size} bytes)")
            return 0
        report = sweeper.sweep()
    for r in report.swept:
        print(f"{r.id}  deleted")
    print(f"{len(report.swept)} expired recordings deleted, {report.freed} bytes freed")
    if report.kept:
        first, why = report.kept[0]
        raise RecordingsCliError(
            f"{len(report.kept)} expired recordings kept: their file could not be deleted "
            f"({first.id}: {why})"
        )
    return 0


# --------------------------------------------------------------------------- registration


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--organization", type=_positive_int, metavar="ID",
                        help="only this organization's recordings")
    parser.add_argument("--extension", type=_extension, metavar="NUMBER",
                        help="only this extension's recordings (e.g. 0003*210)")
    parser.add_argument("--state", choices=_STATES, help="only recordings in this state")
    parser.add_argument("--limit", type=_positive_int, metavar="N",
                        help="at most N recordings (the newest)")


def register(sub: Subcommands) -> None:
    group = add_group(
        sub, "recordings", "the recordings catalog: list, show, export, retention sweep",
        "The recordings catalog, read and swept in the database directly (the bridge may "
        "be stopped). Newest first.",
    )
    listing = add_command(group, _list, "list", help="list recordings (newest first)",
                          description="List the catalog's recordings, newest first.")
    _add_filters(listing)
    show = add_command(group, _show, "show", help="one recording, every field, as JSON",
                       description="Print one recording's row as JSON (times in UTC).")
    show.add_argument("id", metavar="ID", help="the recording's id (r-<16 hex>)")
    export = add_command(
        group, _export, "export", help="write recordings to stdout as CSV or JSON lines",
        description="Write the recordings that match to standard output, every field: "
        "CSV with a header line (paused intervals as JSON), or one JSON object a line.",
    )
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                        help="csv (default) or jsonl")
    _add_filters(export)
    sweep = add_command(
        group, _sweep, "sweep", help="delete the recordings their organization's retention "
        "expired (--dry-run: only list them)",
        description="Delete, file and row, every finished recording (completed, failed, "
        "missing) that ended more than its organization's recordings.retention_days ago "
        "(the directory); never a running one. The service does the same every "
        "[recordings] sweep_interval seconds. Exits 1 when a file could not be deleted.",
    )
    sweep.add_argument("--dry-run", action="store_true",
                       help="list what would be deleted, delete nothing")
