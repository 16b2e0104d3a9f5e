"""``pbx-bridge events deliveries [--state S] [--limit N] [--event EVT]`` and
``pbx-bridge events redeliver ID``: the outbox for admins (the running service picks a
redelivered row up within ``[events] poll_interval`` seconds)."""

from __future__ import annotations

import argparse
import time

from pbx_bridge.calls.model import iso
from pbx_bridge.commands import add_config_option
from pbx_bridge.config import load_settings
from pbx_bridge.directory.store import Directory, Migrate
from pbx_bridge.webhooks.outbox import Outbox

__all__ = ["deliveries_lines", "register"]


def deliveries_lines(outbox: Outbox, state: str | None = None, limit: int = 100,
                     event: str | None = None) -> list[str]:
    """``event``: only that event's deliveries (one per subscription)."""
    lines = ["id\tevent\tsubscription\tstate\tattempts\tnext\tstatus\terror"]
    rows = outbox.find(state, limit) if event is None else [
        d for d in outbox.of_event(event) if state is None or d.state == state][:limit]
    for d in rows:
        lines.append("\t".join((
            str(d.id), f"evt-{d.event_seq:016x}", d.subscription, d.state, str(d.attempts),
            (iso(d.next_at) or "-") if d.state == "pending" else "-",
            str(d.last_status) if d.last_status is not None else "-",
            (d.last_error or "-").replace("\t", " "),
        )))
    return lines


def _outbox(args: argparse.Namespace) -> tuple[Directory, Outbox]:
    directory = Directory.from_settings(load_settings(args.config), migrate=Migrate.NOTHING)
    return directory, Outbox(directory.database)


def _deliveries(args: argparse.Namespace) -> int:
    directory, outbox = _outbox(args)
    try:
        print("\n".join(deliveries_lines(outbox, args.state, args.limit, args.event)))
    finally:
        directory.close()
    return 0


def _redeliver(args: argparse.Namespace) -> int:
    directory, outbox = _outbox(args)
    try:
        if not outbox.redeliver(args.id, time.time()):
            print(f"pbx-bridge events redeliver: no delivery {args.id} (or its event "
                  "is no longer kept)")
            return 1
        print(f"delivery {args.id}: pending again")
    finally:
        directory.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    events = sub.add_parser("events", help="webhook deliveries (the outbox)",
                            description="Inspect and retry webhook deliveries.")
    inner = events.add_subparsers(dest="events_command", required=True)
    listing = inner.add_parser("deliveries", help="list deliveries, newest first")
    add_config_option(listing)
    listing.add_argument("--state", choices=("pending", "delivered", "dead"))
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--event", metavar="EVT", help="only this event's (evt-...)")
    listing.set_defaults(func=_deliveries)
    again = inner.add_parser("redeliver", help="make a delivery pending again, due now")
    add_config_option(again)
    again.add_argument("id", type=int, help="the delivery id (from `events deliveries`)")
    again.set_defaults(func=_redeliver)
