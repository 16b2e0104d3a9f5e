"""Helpers for the API unit tests (tests/unit/test_api_*.py): a demo directory in a tmp
SQLite file with one app and token per principal, the Services (pbx_bridge/server.py)
whose AMI client points at a closed port (it never connects), and a tiny PBX stand-in
that feeds the bridge's tracker with events shaped like real AMI ones.

Nothing here ever answers an AMI action: recording success is the integration tier's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pbx_bridge.calls.tracker import Call
from pbx_bridge.config import (
    AmiSettings,
    DatabaseSettings,
    EventsSettings,
    HttpSettings,
    Settings,
)
from pbx_bridge.directory.models import DirectoryFile, User
from pbx_bridge.directory.store import Directory
from pbx_bridge.recording.events import apply_event as apply_recording_event
from pbx_bridge.server import Services
from tests.support.openapi import answer_schema, validator

DEMO = Path(__file__).resolve().parents[2] / "config" / "directory.example.toml"
BASE_URL = "https://pbx.example.com"

# Who is who in the demo directory (config/directory.example.toml), plus user 21:
#   org 3 "0003": John Doe 12 (0003*210, 0003*211), Jane Roe 13 (0003*212 recording off,
#                 0003*213 recording "always"), organization account 2
#   org 4 "0004": user 20 (0004*210), organization account 21 (added here)
#   admin 1
USERS = {"admin": 1, "org3": 2, "john": 12, "jane": 13, "other": 20, "org4": 21}


def closed_port() -> int:
    """A loopback TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_settings(tmp_path: Path, *, events: EventsSettings | None = None,
                  write_delay: float | None = None, database_url: str | None = None,
                  **http: Any) -> Settings:
    database: dict[str, Any] = {} if write_delay is None else {"write_delay": write_delay}
    return Settings(
        events=events or EventsSettings(),
        http=HttpSettings(public_base_url=BASE_URL, **http),
        ami=AmiSettings(
            host="127.0.0.1",
            port=closed_port(),
            secret="test-secret",
            connect_timeout=0.5,
            action_timeout=0.5,
            backoff_cap=0.5,
            ping_interval=5.0,
            ping_timeout=1.0,
            # Nothing answers here (read paths only): one session, as the API tests pretend
            # it is logged in; the action sessions have tests of their own (test_ami_pool).
            action_sessions=0,
        ),
        database=DatabaseSettings(
            url=SecretStr(database_url or f"sqlite:///{tmp_path / 'directory.sqlite3'}"),
            **database),
    )


def make_directory(settings: Settings, clock: Callable[[], float] | None = None) -> Directory:
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    directory = Directory.open(settings.database.url.get_secret_value(), **kwargs)
    directory.load_toml(DEMO)
    directory.load(
        DirectoryFile(
            users=[User(id=21, name="Other org account", role="organization", organization=4)]
        )
    )
    return directory


@dataclass
class Apps:
    """One app per demo user: client ids, secrets and a bearer token each."""

    client_id: dict[str, str] = field(default_factory=dict)
    secret: dict[str, str] = field(default_factory=dict)
    token: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, directory: Directory) -> Apps:
        apps = cls()
        for who, uid in USERS.items():
            cid, secret = directory.create_app(uid, f"test app of {who}")
            apps.client_id[who] = cid
            apps.secret[who] = secret
            apps.token[who], _ = directory.issue_token(cid)
        return apps

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token[who]}"}


# --------------------------------------------------------------------------- events

_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
EPOCH = 1795849232


@dataclass
class Chan:
    name: str
    uniqueid: str
    linkedid: str
    state: int
    num: str
    cid_name: str
    exten: str


class FakePbx:
    """Feeds ``bridge.tracker`` with AMI-shaped events (Newchannel, Newstate, Hangup)."""

    def __init__(self, bridge: Services) -> None:
        self.bridge = bridge
        self.seq = 0
        self.last: tuple[Chan, Chan] | None = None  # the channels of the last call()

    def _snapshot(self, ch: Chan, event: str) -> dict[str, str]:
        return {
            "Event": event,
            "Privilege": "call,all",
            "Channel": ch.name,
            "ChannelState": str(ch.state),
            "ChannelStateDesc": _STATE_DESC.get(ch.state, "Unknown"),
            "CallerIDNum": ch.num,
            "CallerIDName": ch.cid_name,
            "ConnectedLineNum": "<unknown>",
            "ConnectedLineName": "<unknown>",
            "Language": "en",
            "AccountCode": "",
            "Context": "from-internal",
            "Exten": ch.exten,
            "Priority": "1",
            "Uniqueid": ch.uniqueid,
            "Linkedid": ch.linkedid,
            "Timestamp": f"{EPOCH + self.seq}.000000",
        }

    def feed(self, ev: dict[str, str]) -> None:
        self.bridge.tracker.feed(ev)
        apply_recording_event(self.bridge.tracker, ev)  # the recording feature's reading
        self.bridge.tracker.take_effects()  # Setvar effects: nobody to send them to

    def channel(
        self,
        device: str,
        *,
        linkedid: str | None = None,
        state: int = 4,
        num: str = "",
        name: str = "",
        exten: str = "",
    ) -> Chan:
        self.seq += 1
        uid = f"{EPOCH}.{self.seq}"
        ch = Chan(f"{device}-{self.seq:08x}", uid, linkedid or uid, state, num, name, exten)
        self.feed(self._snapshot(ch, "Newchannel"))
        return ch

    def set_state(self, ch: Chan, state: int) -> None:
        self.seq += 1
        ch.state = state
        self.feed(self._snapshot(ch, "Newstate"))

    def hangup(self, ch: Chan) -> None:
        self.seq += 1
        ev = self._snapshot(ch, "Hangup")
        ev.update({"Cause": "16", "Cause-txt": "Normal Clearing"})
        self.feed(ev)

    def call(
        self,
        caller: str,
        callee: str,
        *,
        answered: bool = True,
        caller_num: str | None = None,
        caller_name: str = "",
    ) -> Call:
        """``caller``/``callee``: a device (``PJSIP/0003*210``) or a trunk (``PJSIP/pstn``)
        standing for the public network. Returns the tracker's Call."""
        dialled = callee.split("/", 1)[1]
        num = caller_num if caller_num is not None else caller.split("/", 1)[1]
        a = self.channel(caller, state=4, num=num, name=caller_name, exten=dialled)
        b = self.channel(callee, linkedid=a.uniqueid, state=5, num=dialled, exten=dialled)
        if answered:
            self.set_state(b, 6)
            self.set_state(a, 6)
        self.last = (a, b)
        return self.bridge.tracker.calls[a.uniqueid]


# --------------------------------------------------------------------------- AMI spy


class AmiSpy:
    """Records every ``send_action`` and hands it to the real client, which is not
    connected and so refuses it: no answer is ever invented here."""

    def __init__(self, ami: Any) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._real = ami.send_action

    async def __call__(self, name: str, headers: dict[str, str] | None = None, **kw: Any):
        self.calls.append((name, dict(headers or {})))
        return await self._real(name, headers or {}, **kw)


# --------------------------------------------------------------------------- the app


def force_connected(monkeypatch: Any, ami: Any, value: bool = True) -> None:
    """Make ``ami.connected`` report ``value`` (for read paths: nothing is answered)."""
    attr = getattr(type(ami), "connected", None)
    if isinstance(attr, property):
        monkeypatch.setattr(type(ami), "connected", property(lambda self: value))
    else:
        monkeypatch.setattr(ami, "connected", value, raising=False)


@dataclass
class Api:
    settings: Settings
    directory: Directory
    bridge: Services
    client: Any  # aiohttp.test_utils.TestClient
    apps: Apps
    pbx: FakePbx
    spy: AmiSpy

    @classmethod
    async def start(
        cls,
        aiohttp_client: Any,
        tmp_path: Path,
        *,
        clock: Callable[[], float] | None = None,
        events: EventsSettings | None = None,
        write_delay: float | None = None,
        database_url: str | None = None,
        **http: Any,
    ) -> Api:
        from aiohttp.test_utils import TestServer

        from pbx_bridge.api.app import AccessLogger, create_app

        settings = make_settings(tmp_path, events=events, write_delay=write_delay,
                                 database_url=database_url, **http)
        directory = make_directory(settings, clock)
        bridge = Services(settings, directory)
        spy = AmiSpy(bridge.ami)
        bridge.ami.send_action = spy  # type: ignore[method-assign]
        app = create_app(settings, directory, bridge)
        # The service's own access logger, as `pbx-bridge serve` runs it.
        server = TestServer(app)
        await server.start_server(access_log_class=AccessLogger)
        client = await aiohttp_client(server)
        return cls(
            settings, directory, bridge, client, Apps.create(directory), FakePbx(bridge), spy
        )

    def ready(self, monkeypatch: Any) -> None:
        """The bridge as if AMI were logged in and resynced (read paths only)."""
        self.bridge.ready = True
        force_connected(monkeypatch, self.bridge.ami, True)

    async def get(self, path: str, who: str | None = "john", **kw: Any):
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.update(self.apps.auth(who))
        return await _as_documented(await self.client.get(_url(path), headers=headers, **kw))

    async def put(self, path: str, body: Any, who: str | None = "john", **kw: Any):
        import json as _json

        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers.update(self.apps.auth(who))
        data = body if isinstance(body, bytes | str) else _json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
        return await _as_documented(
            await self.client.put(_url(path), data=data, headers=headers, **kw)
        )


async def _as_documented(resp: Any) -> Any:
    """Every PhoneCall (list, one, PUT) the API answers in these tests must match the
    OpenAPI document generated from the models; the body stays readable afterwards."""
    if resp.status == 200:
        schema = answer_schema(resp.method, resp.url.raw_path, resp.status)
        if schema is not None:
            validator(schema).validate(await resp.json())
    return resp


def _url(path: str) -> Any:
    """Paths are given already percent-encoded where it matters: send them as they are."""
    from yarl import URL

    return URL(path, encoded=True)


async def error_of(resp: Any) -> tuple[int, str]:
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return resp.status, body["error"]["code"]
