"""What a feature (recording today; events, call actions tomorrow) may hook into.

`PbxLink` calls every registered feature, in registration order, at these points; a
feature overrides the ones it needs (the defaults do nothing). Hooks other than the
two async ones must not block: they may spawn work with `PbxLink.spawn`.
"""

from __future__ import annotations

from collections.abc import Mapping

Event = Mapping[str, str]


class Feature:
    async def review_snapshot(self, rows: list[Event], *, reconnected: bool) -> list[Event]:
        """Before a resync hands Asterisk's channel list (CoreShowChannel rows) to the
        tracker: check or correct rows (e.g. against what Asterisk really runs).
        ``reconnected``: the link was (re)established, anything may have been missed."""
        return rows

    def on_snapshot(self, rows: list[Event]) -> None:
        """After the tracker took the same rows."""

    def on_event(self, ev: Event) -> None:
        """After the tracker applied an AMI event."""

    async def on_connected(self) -> None:
        """After a (re)connect's resync, before the link says it is ready."""

    def on_ready(self, *, reconnected: bool) -> None:
        """While ready: after a (re)connect (``reconnected``) or a periodic resync."""

    def on_directory(self) -> None:
        """The directory changed (the tracker has the new devices already)."""
