"""What one stream client sees: the events of the extensions its token may act on
(CONTRACT section 3: a user its own, an organization account its organization's, the
admin all), of the types it asked for (``?types=``). Checked against the directory as
it is when the event is sent, so an extension moved away stops showing at once."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pbx_bridge.directory import access
from pbx_bridge.directory.models import Principal
from pbx_bridge.directory.store import Directory
from pbx_bridge.events.model import Event

__all__ = ["StreamView"]


class StreamView:
    def __init__(self, principal: Principal, types: Collection[str] | None,
                 directory: Directory) -> None:
        self.principal = principal
        self.types = frozenset(types) if types else None
        self.directory = directory

    def may_see(self, extension: str) -> bool:
        if self.principal.role == "admin":
            return True
        ext = self.directory.extension(extension)
        return ext is not None and access.can_act_on(self.principal, ext, self.directory)

    def wants(self, event: Event) -> bool:
        return (self.types is None or event.type in self.types) and \
            self.may_see(event.extension)

    def wants_stored(self, doc: dict[str, Any]) -> bool:
        """The same, for an event read back from the history (its JSON)."""
        return (self.types is None or doc.get("type") in self.types) and \
            self.may_see(str(doc.get("extension", "")))
