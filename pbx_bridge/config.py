"""Settings: a TOML file plus ``PBX_BRIDGE_<SECTION>__<KEY>`` environment overrides.

Precedence, highest first: values passed to ``Settings(...)`` in code, the environment,
the TOML file, the defaults below. ``load_settings()`` is the one entry point the rest of
the project uses; it turns every problem (missing file, bad TOML, unknown key, value out
of range) into one :class:`ConfigError` whose message names the file and the key.

Secrets (``ami.secret``, ``database.url``, which may hold a password)
are :class:`pydantic.SecretStr`: they print as ``**********`` in ``repr``/``str``/
``model_dump(mode="json")`` and therefore in logs. Read the value with
``.get_secret_value()`` only where it is used (sent to Asterisk, given to the driver).
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_PREFIX",
    "AmiSettings",
    "AuthSettings",
    "ConfigError",
    "DatabaseSettings",
    "DialingSettings",
    "HttpSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PbxNodeSettings",
    "RecordingsSettings",
    "Settings",
    "load_settings",
    "validation_messages",
]

ENV_PREFIX = "PBX_BRIDGE_"
ENV_CONFIG_PATH = "PBX_BRIDGE_CONFIG"
_NESTED = "__"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ConfigError(ValueError):
    """The configuration cannot be used. The message is one line, ready for the user."""


# --------------------------------------------------------------------------- validators


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (CR, LF, ...)")
    return value


def _no_control_secret(value: SecretStr) -> SecretStr:
    _no_control(value.get_secret_value())
    return value


def _http_url(value: str) -> str:
    _no_control(value)
    if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
        raise ValueError("must be an absolute http:// or https:// URL without query")
    return value.rstrip("/")


Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1), AfterValidator(_no_control)]
Secret = Annotated[SecretStr, AfterValidator(_no_control_secret)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections


def _base_url(value: str) -> str:
    return _http_url(value) if value else ""


def _unset_if_empty(value: Any) -> Any:
    return None if value == "" else value


def _wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


class HttpSettings(_Section):
    host: Text = "127.0.0.1"
    port: Port = 8080
    # Absolute base of the `link.self` URLs (no trailing slash; one is stripped). ""
    # (the default): follows the listener, `http(s)://<host>:<port>` (127.0.0.1 for a
    # wildcard host), https when tls_cert is set.
    public_base_url: Annotated[str, AfterValidator(_base_url)] = ""
    body_limit: Annotated[int, Field(gt=0)] = 16384
    request_timeout: Seconds = 10.0
    # Hostile clients (issue 9): the request line and headers must be complete within
    # header_timeout of the connection's start (or of the first byte of a later request
    # on a kept-alive connection); an idle kept-alive connection is closed after
    # keepalive_timeout; at most max_connections are open at once (more are closed at
    # once). TLS handshakes must finish within header_timeout too.
    header_timeout: Seconds = 10.0
    keepalive_timeout: Seconds = 30.0
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    # Native HTTPS: PEM certificate chain and private key (both or neither). Re-read on
    # SIGHUP (new connections get the new certificate).
    tls_cert: Annotated[Path | None, BeforeValidator(_unset_if_empty)] = None
    tls_key: Annotated[Path | None, BeforeValidator(_unset_if_empty)] = None
    # On SIGTERM/SIGINT, how long requests in flight may take to finish.
    shutdown_timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _tls_and_base_url(self) -> HttpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        for path in (self.tls_cert, self.tls_key):
            if path is not None:
                _no_control(str(path))
        if not self.public_base_url:
            scheme = "https" if self.tls_cert is not None else "http"
            host = "127.0.0.1" if _wildcard(self.host) else self.host
            if ":" in host:
                host = f"[{host}]"  # an IPv6 literal
            # frozen model: set the derived default the way pydantic itself stores fields
            object.__setattr__(self, "public_base_url", _http_url(f"{scheme}://{host}:{self.port}"))
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


class AmiSettings(_Section):
    host: Text = "127.0.0.1"
    port: Port = 5038
    username: Text = "pbx-bridge"
    secret: Secret = SecretStr("")
    ping_interval: Seconds = 10.0
    ping_timeout: Seconds = 5.0
    action_timeout: Seconds = 5.0
    connect_timeout: Seconds = 5.0
    backoff_cap: Seconds = 30.0
    auth_retry: Seconds = 60.0
    # Asterisk's channel list is read again this often (besides every reconnect): a
    # safety net against any event Asterisk never sent.
    resync_interval: Seconds = 300.0
    # Let `serve` use an empty, placeholder or demo secret (pbx_bridge/secret_check.py).
    allow_demo_secret: bool = False
    # AMI sessions that carry actions, besides the one that carries events (issue 15):
    # Asterisk runs one session's actions one after the other. 0 = every action on the
    # event session. Same user, same timeouts; see pbx_bridge/pbx/pool.py.
    action_sessions: Annotated[int, Field(ge=0, le=16)] = 0


# A PBX node's name: in logs, metrics labels, the directory (`node = "pbx2"`), the
# environment variable of its secret (PBX_BRIDGE_PBX_SECRETS__<NAME>) and /readyz/<name>.
NodeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
# The one node of a configuration without [[pbx]] entries (its [ami] section).
DEFAULT_NODE = "pbx"


class NodeRecordingsSettings(_Section):
    """Where the bridge reads one node's recording files (a ``[[pbx]]`` entry's
    ``recordings`` table): the keys of ``[recordings]`` that say so; a key left out is
    ``[recordings]``'s. Nodes are often other machines, whose folders this host mounts
    somewhere of its own."""

    monitor_dir: Annotated[str, AfterValidator(_no_control)] | None = None
    host_root: Annotated[str, AfterValidator(_no_control)] | None = None

    def applied_to(self, base: RecordingsSettings) -> RecordingsSettings:
        """``base`` ([recordings]) with this node's keys in place of its own."""
        given = self.model_dump(exclude_none=True)
        return base.model_copy(update=given) if given else base


class PbxNodeSettings(AmiSettings):
    """One Asterisk node (a ``[[pbx]]`` entry): a name and the keys of ``[ami]``, whose
    values are the defaults of every entry."""

    name: NodeName = DEFAULT_NODE
    # Where this node's recordings are read (issue 16; none: [recordings]'s folders).
    recordings: NodeRecordingsSettings = NodeRecordingsSettings()


def _database_url(value: SecretStr) -> SecretStr:
    text = _no_control(value.get_secret_value())
    # Parsed for real by pbx_bridge.storage when opened; here only the shape, so that a
    # typo fails at load time without importing SQLAlchemy into every command.
    if not re.fullmatch(r"(sqlite|postgresql|postgres)(\+[a-z0-9_]+)?://\S*", text):
        raise ValueError("must be a sqlite:///FILE or postgresql://USER@HOST/DB URL")
    return value


# The folder the default SQLite database lives in: systemd's StateDirectory= (given to the
# service as $STATE_DIRECTORY; the first one if several), else this absolute folder, so
# `directory load`, `app`, `token` and `serve` use one database whatever folder they run in.
DEFAULT_STATE_DIR = "/var/lib/pbx-bridge"


def default_database_url() -> str:
    state = os.environ.get("STATE_DIRECTORY", "").split(":", 1)[0]
    folder = state if state.startswith("/") else DEFAULT_STATE_DIR
    return f"sqlite:///{folder.rstrip('/')}/pbx_bridge.sqlite3"


class DatabaseSettings(_Section):
    # Where everything pbx-bridge persists lives (directory, apps, hashed tokens). A
    # SecretStr: a PostgreSQL URL may carry a password. "sqlite:////abs/x" is absolute,
    # "sqlite:///var/x" relative to the working directory (avoid it). The default is
    # absolute: default_database_url().
    url: Annotated[SecretStr, AfterValidator(_database_url)] = Field(
        default_factory=lambda: SecretStr(default_database_url())
    )
    # PostgreSQL: how old, in seconds, the check for changes made by other processes may
    # be for look-ups outside a request (AMI events). Each authenticated request checks.
    change_check_interval: Seconds = 0.1
    # How often the running service looks for directory changes made by another process
    # (`pbx-bridge directory load`), so new or moved devices are tracked without a restart.
    directory_poll: Seconds = 5.0
    # How long the recordings catalog's and the event history's writes (every
    # MixMonitorStart/Stop) may wait for a moment with no HTTP request in flight, seconds:
    # their worker thread's Python would otherwise slow the requests it runs next to
    # (core/quiet.py, issue 15). Events reach webhooks and the event stream at most this
    # much later; 0 = write at once.
    write_delay: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.03

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for logs and messages."""
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", self.url.get_secret_value())


class RecordingsSettings(_Section):
    # "" = Asterisk's own monitor spool directory (<astspooldir>/monitor).
    directory: Annotated[str, AfterValidator(_no_control)] = ""
    default_format: Literal["wav", "wav49"] = "wav"
    # A refused or timed-out automatic ("always") start is retried after
    # always_retry_first seconds, doubling up to always_retry_cap, while the channel lives.
    always_retry_first: Seconds = 5.0
    always_retry_cap: Seconds = 60.0
    # The dialplan starts "always" recordings itself on answer (Dial U()); the bridge only
    # repairs a view still not recording always_grace seconds after it first saw it due,
    # so it never starts a second MixMonitor next to the dialplan's.
    always_grace: Seconds = 2.0
    # Where the bridge reads the files Asterisk writes (the recordings catalog):
    # monitor_dir is Asterisk's monitor folder as this host sees it (relative file names
    # land there); host_root is put in front of an absolute file name, for an Asterisk
    # whose root (a container's, say) is mounted here ("" = the same filesystem).
    monitor_dir: Annotated[str, AfterValidator(_no_control)] = "/var/spool/asterisk/monitor"
    host_root: Annotated[str, AfterValidator(_no_control)] = ""
    # How often a finished recording's file size is checked until it stops changing.
    settle_interval: Seconds = 0.5
    # How often the running service deletes the recordings its organization's retention
    # (directory: recordings.retention_days) expired; 0 = never (`pbx-bridge recordings
    # sweep` from cron instead).
    sweep_interval: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 3600.0


class AuthSettings(_Section):
    token_ttl: Annotated[int, Field(gt=0)] = 3600
    max_token_ttl: Annotated[int, Field(gt=0)] = 31536000
    # `pbx-bridge token issue` without --ttl: shorter, such a token is pasted by hand and
    # lands in shell history and terminal scrollback (docs/contract.md, section 5).
    # Capped at max_token_ttl, like every lifetime.
    cli_token_ttl: Annotated[int, Field(gt=0)] = 900
    # How often the running service deletes expired tokens from the database.
    purge_interval: Seconds = 600.0
    # Failed client authentications (/oauth/token, /oauth/revoke) allowed per client id
    # and per source address before a lockout that doubles with each further failure,
    # up to lockout_max seconds (docs/reliability.md, "Failed client authentication").
    failures_per_client: Annotated[int, Field(ge=1)] = 5
    failures_per_address: Annotated[int, Field(ge=1)] = 20
    lockout_max: Seconds = 300.0
    # Client ids and addresses remembered at most (each); the oldest are forgotten first.
    throttle_entries: Annotated[int, Field(ge=100)] = 10000

    @model_validator(mode="after")
    def _ttl_within_max(self) -> AuthSettings:
        if self.token_ttl > self.max_token_ttl:
            raise ValueError("token_ttl must not exceed max_token_ttl")
        return self


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # "json" = one JSON object a line; `json = true` is the older spelling of it.
    format: Literal["text", "json"] = "text"
    json_: bool = Field(default=False, alias="json")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def is_json(self) -> bool:
        return self.format == "json" or self.json_


class MetricsSettings(_Section):
    # Who may read GET /metrics (it shows every tenant's figures): "admin" = a bearer
    # token of an admin user's app; "none" = anyone who can reach the port.
    auth: Literal["admin", "none"] = "admin"


def _networks(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not an IP network (CIDR)") from None
    return value


class EventsSettings(_Section):
    """Events and webhooks (pbx_bridge/events/, pbx_bridge/webhooks/)."""

    # Receivers on loopback, link-local, private, multicast, unspecified or reserved
    # addresses are refused (SSRF guard) unless their address is in one of these networks
    # (CIDR, e.g. "127.0.0.0/8", "10.1.2.0/24").
    allow_networks: Annotated[list[str], AfterValidator(_networks)] = []
    # One attempt's limit (connect + answer), seconds.
    timeout: Seconds = 10.0
    # Retries: backoff_first * 2^(attempt-1), capped at backoff_cap, with full jitter
    # over its upper half; a delivery still failing retry_window seconds after its
    # event is marked dead (`pbx-bridge events redeliver ID` tries it again).
    backoff_first: Seconds = 5.0
    backoff_cap: Seconds = 3600.0
    retry_window: Seconds = 86400.0
    # How often the sender looks for deliveries due that no in-process signal announced
    # (after a restart, `events redeliver` from another process).
    poll_interval: Seconds = 5.0
    # The kept history (for the event stream's Last-Event-ID): an event goes when it is
    # older than history_seconds AND history_events newer ones exist.
    history_seconds: Seconds = 86400.0
    history_events: Annotated[int, Field(ge=1)] = 100_000
    # The live stream (GET /uapi/events): a heartbeat comment every stream_heartbeat
    # seconds (the token is checked again then: a revoked one ends the stream); a client
    # more than stream_queue events behind, or whose socket takes no byte for
    # stream_send_timeout seconds, is cut (memory never grows with a client that stops
    # reading).
    stream_heartbeat: Seconds = 15.0
    stream_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    stream_send_timeout: Seconds = 60.0
    # Replicas (docs/design.md, "Replicas: events and webhooks"): how often a stream
    # looks in the shared history for events another replica stored, seconds; and how
    # long a sender's claim on an outbox row lasts (a killed replica's rows go back to
    # the other senders after it; at least twice `timeout`, as an attempt must end
    # within its claim).
    stream_poll_interval: Seconds = 1.0
    delivery_lease: Seconds = 60.0

    @model_validator(mode="after")
    def _lease_outlasts_attempts(self) -> EventsSettings:
        if self.delivery_lease < 2 * self.timeout:
            raise ValueError("delivery_lease must be at least twice timeout")
        return self


_DIALPLAN_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class CallControlSettings(_Section):
    """Call control: hold and park (pbx_bridge/holding/)."""

    # The dialplan context where an extension's number is dialled: UnPark sends the
    # parked call there (AMI Redirect to <sendCallTo>@dial_context).
    dial_context: Annotated[str, Field(pattern=_DIALPLAN_NAME)] = "from-internal"
    # The res_parking lot Park uses (res_parking.conf).
    parking_lot: Annotated[str, Field(pattern=_DIALPLAN_NAME)] = "default"


class DialingSettings(_Section):
    """Click-to-call (pbx_bridge/dialing/, issue 14)."""

    # The dialplan context a placed call's destination (and a callback's public source)
    # is dialled in, as the extension's own phone would dial it. Asterisk context names
    # only: it goes into a channel variable and a Local channel name.
    context: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,79}$")] = "from-internal"
    # How long a POST waits for Asterisk to show the new call's first channel (so the 201
    # carries the call as Asterisk reports it, its nonce included), seconds.
    show_wait: Seconds = 2.0


# --------------------------------------------------------------------------- settings

# The parsed TOML of the file being loaded by load_settings(); read by _FileSource.
_FILE_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pbx_bridge_config_file_data", default=None
)


class _FileSource(PydanticBaseSettingsSource):
    """The TOML file's content, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns everything at once

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


_DIRECTORY_DATABASE_GONE = (
    "directory.database was replaced by database.url: write [database] "
    'url = "sqlite:///<that path>" (environment: PBX_BRIDGE_DATABASE__URL)'
)

# Nothing in pbx-bridge ever used ARI (only bench/ compares against it, with the sandbox's
# own credentials). The environment variables PBX_BRIDGE_ARI__* are ignored, so an old
# EnvironmentFile still starts; a section in the file is an error that says what to do.
_ARI_GONE = "[ari] was removed (pbx-bridge does not use ARI): delete the section"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=_NESTED,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    http: HttpSettings = HttpSettings()
    ami: AmiSettings = AmiSettings()
    # A factory: the default URL follows $STATE_DIRECTORY when the settings are read.
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    recordings: RecordingsSettings = RecordingsSettings()
    auth: AuthSettings = AuthSettings()
    logging: LoggingSettings = LoggingSettings()
    metrics: MetricsSettings = MetricsSettings()
    events: EventsSettings = EventsSettings()
    callcontrol: CallControlSettings = CallControlSettings()
    dialing: DialingSettings = DialingSettings()
    # Several PBX nodes (issue 16): one [[pbx]] entry each; none = [ami] is the one node.
    pbx: list[PbxNodeSettings] = []
    # A node's AMI secret by environment: PBX_BRIDGE_PBX_SECRETS__<NAME> (wins over the
    # entry's `secret`); a table [pbx_secrets] in the file works too.
    pbx_secrets: dict[NodeName, Secret] = {}

    _config_file: Path | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        # Say what replaced a removed key, rather than only "unknown key".
        if isinstance(data, dict) and isinstance(data.get("directory"), dict):
            if "database" in data["directory"]:
                raise ValueError(_DIRECTORY_DATABASE_GONE)
        if isinstance(data, dict) and "ari" in data:
            raise ValueError(_ARI_GONE)
        if isinstance(data, dict):
            return _node_defaults(data)
        return data

    @model_validator(mode="after")
    def _node_names(self) -> Settings:
        names = [node.name for node in self.pbx]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"pbx: the node name {name!r} is given twice")
        known = set(names) if names else {DEFAULT_NODE}
        for name in self.pbx_secrets:
            if name not in known:
                raise ValueError(f"pbx_secrets: no [[pbx]] node is named {name!r}")
        return self

    def nodes(self) -> list[PbxNodeSettings]:
        """The PBX nodes, the first one being the default node of an extension: the
        [[pbx]] entries, or the [ami] section as node "pbx"; each with its secret from
        ``pbx_secrets`` when given there."""
        entries = self.pbx or [PbxNodeSettings(**dict(self.ami))]
        return [
            node.model_copy(update={"secret": self.pbx_secrets[node.name]})
            if node.name in self.pbx_secrets else node
            for node in entries
        ]

    @property
    def config_file(self) -> Path | None:
        """The TOML file these settings were read from, if any."""
        return self._config_file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


def _node_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Every [[pbx]] entry takes the keys it does not give from [ami] (file and
    environment merged), so PBX_BRIDGE_AMI__PING_INTERVAL, say, applies to every node."""
    entries = data.get("pbx")
    ami = data.get("ami")
    if not isinstance(entries, list) or not isinstance(ami, dict):
        return data
    base = {k: v for k, v in ami.items() if k != "name"}
    filled = [{**base, **entry} if isinstance(entry, dict) else entry for entry in entries]
    return {**data, "pbx": filled}


# --------------------------------------------------------------------------- loading


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def validation_messages(exc: ValidationError, *, show_input: bool = False) -> list[str]:
    """One short ``where: what`` line per error of a pydantic ValidationError.

    Input values are left out unless ``show_input`` (they may be secrets).
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key missing"
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if show_input and err["type"] not in ("model_type", "dict_type"):
                msg += f" (got {err['input']!r})"
        lines.append(f"{_loc(loc)}: {msg}")
    return lines


def _env_name_for(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable that set this key, if one did."""
    if not loc:
        return None
    candidates = [ENV_PREFIX + str(loc[0])]
    if len(loc) > 1:
        candidates.insert(0, ENV_PREFIX + str(loc[0]) + _NESTED + str(loc[1]))
    present = {k.upper() for k in os.environ}
    for name in candidates:
        if name.upper() in present:
            return name.upper()
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path}: is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the settings.

    ``path`` (the ``--config`` option) wins over ``$PBX_BRIDGE_CONFIG``; with neither, only
    the defaults and the environment are used. Raises :class:`ConfigError`.
    """
    if path is None or str(path) == "":
        env_path = os.environ.get(ENV_CONFIG_PATH, "")
        path = env_path or None
    file = Path(path) if path is not None else None
    if any(k.upper() == f"{ENV_PREFIX}DIRECTORY{_NESTED}DATABASE" for k in os.environ):
        raise ConfigError(
            f"environment variable {ENV_PREFIX}DIRECTORY{_NESTED}DATABASE: "
            + _DIRECTORY_DATABASE_GONE
        )
    data = _read_toml(file) if file is not None else {}

    token = _FILE_DATA.set(data)
    try:
        settings = Settings()
    except ValidationError as exc:
        where = f"config file {file}" if file is not None else "configuration"
        parts = []
        for err, line in zip(exc.errors(include_url=False), validation_messages(exc), strict=True):
            env = _env_name_for(tuple(err["loc"]))
            parts.append(f"{line} (from environment variable {env})" if env else line)
        raise ConfigError(f"{where}: " + "; ".join(parts)) from None
    finally:
        _FILE_DATA.reset(token)
    settings._config_file = file
    return settings
