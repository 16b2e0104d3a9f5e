"""What the doctor reads from Asterisk, with the bridge's own AMI login only.

Every fact comes from an AMI action the bridge's user may send (read call,user; write
system,call,reporting): `GetConfig` (class system: the files as Asterisk reads them,
includes resolved), `ShowDialPlan` (reporting: the running dialplan), `ModuleCheck`,
`PJSIPShowEndpoints`, `DBGetTree` (system), `CoreSettings`. An action answered
``Permission denied`` becomes :class:`Denied`, which a check reports as "cannot check
with these rights" instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbx_bridge.pbx.ami import AmiClient, is_success

Message = dict[str, str]
Config = list[tuple[str, list[tuple[str, str]]]]  # [(category, [(key, value), ...]), ...]

_CATEGORY = re.compile(r"Category-(\d+)")
_LINE = re.compile(r"Line-(\d+)-(\d+)")


class Denied(Exception):
    """The bridge's AMI user may not send this action."""


def denied(resp: Message) -> bool:
    return not is_success(resp) and resp.get("Message", "").lower() == "permission denied"


def parse_config(resp: Message) -> Config:
    """A GetConfig answer -> its categories in file order, each with its lines."""
    cats: dict[int, str] = {}
    lines: dict[int, list[tuple[int, str, str]]] = {}
    for key, value in resp.items():
        if m := _CATEGORY.fullmatch(key):
            cats[int(m[1])] = value
        elif m := _LINE.fullmatch(key):
            name, _, val = value.partition("=")
            lines.setdefault(int(m[1]), []).append((int(m[2]), name.strip(), val.strip()))
    return [(cats[i], [(k, v) for _, k, v in sorted(lines.get(i, []))]) for i in sorted(cats)]


def values(config: Config, category: str, key: str) -> list[str]:
    return [v for cat, items in config if cat == category for k, v in items if k == key]


@dataclass
class Pbx:
    """The AMI link and what was already read through it (each read once)."""

    ami: AmiClient
    _configs: dict[str, Config | None] = field(default_factory=dict)
    _dialplan: list[Message] | None = None
    _core: Message | None = None

    async def action(self, name: str, headers: dict[str, str] | None = None) -> Message:
        resp = dict(await self.ami.send_action(name, headers))
        if denied(resp):
            raise Denied(name)
        return resp

    async def list_action(self, name: str, headers: dict[str, str] | None = None,
                          timeout: float = 15.0) -> list[Message]:
        resp, rows = await self.ami.send_list_action(name, headers, timeout=timeout)
        if denied(dict(resp)):
            raise Denied(name)
        if not is_success(resp):
            raise LookupError(f"{name}: {resp.get('Message', 'error')}")
        return [dict(r) for r in rows]

    async def config(self, filename: str) -> Config | None:
        """A configuration file as Asterisk reads it; None if it has none."""
        if filename not in self._configs:
            resp = await self.action("GetConfig", {"Filename": filename})
            self._configs[filename] = parse_config(resp) if is_success(resp) else None
        return self._configs[filename]

    async def core_settings(self) -> Message:
        """CoreSettings (run user and group, SystemName), read once."""
        if self._core is None:
            self._core = await self.action("CoreSettings")
        return self._core

    async def dialplan(self) -> list[Message]:
        if self._dialplan is None:
            self._dialplan = await self.list_action("ShowDialPlan", timeout=30.0)
        return self._dialplan
