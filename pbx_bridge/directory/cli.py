"""CLI commands: ``directory load``, ``app create|list|disable|enable|delete``,
``token issue|list|revoke``.

No command ever prints a stored token: ``token list`` shows a token's id (the start of
its SHA-256, what the database keeps), and ``token revoke`` takes that id, or the token
itself on standard input (never as an argument: arguments end up in shell history and
in ``ps``).

Errors are raised as exceptions with a one-line message; ``pbx_bridge.cli.main`` prints
``pbx-bridge: error: <message>`` and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from pbx_bridge.commands import Subcommands, add_command, add_group
from pbx_bridge.config import load_settings
from pbx_bridge.directory.store import (
    TOKEN_ID_LEN,
    Directory,
    DirectoryError,
    Migrate,
    token_id,
)

__all__ = ["open_directory", "register"]


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def open_directory(config: str | None) -> Directory:
    """The directory in the database named by the settings (``[database] url``).

    An empty database gets its schema, and a file from before migrations is adopted, so
    that a fresh demo just works; an outdated schema is left to ``pbx-bridge db upgrade``
    (another process may be serving from it)."""
    return Directory.from_settings(load_settings(config), migrate=Migrate.CREATE)


# --------------------------------------------------------------------------- commands


def _directory_load(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        summary = directory.load_toml(args.file)
        print(
            f"loaded {summary.organizations} organizations, {summary.users} users, "
            f"{summary.extensions} extensions into {directory.path}"
        )
    return 0


def _app_create(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        client_id, client_secret = directory.create_app(args.user, args.name)
    print(f"client_id: {client_id}")
    print(f"client_secret: {client_secret}")
    print(
        "pbx-bridge: keep the secret now: it is stored hashed and cannot be shown again",
        file=sys.stderr,
    )
    return 0


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _app_list(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        apps = directory.apps_of_user(args.user) if args.user else directory.all_apps()
    print(f"{'CLIENT_ID':32}  {'USER':>6}  {'STATE':8}  {'CREATED':25}  NAME")
    for app in apps:
        state = "disabled" if app.disabled else "enabled"
        created = _when(app.created)
        print(f"{app.client_id:32}  {app.user_id:>6}  {state:8}  {created:25}  {app.name}")
    return 0


def _app_disable(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        revoked = directory.set_app_disabled(args.app, True)
    print(f"app {args.app} disabled; {revoked} tokens revoked")
    return 0


def _app_enable(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        directory.set_app_disabled(args.app, False)
    print(f"app {args.app} enabled")
    return 0


def _app_delete(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        revoked = directory.delete_app(args.app)
    print(f"app {args.app} deleted; {revoked} tokens revoked")
    return 0


def _token_issue(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    ttl = args.ttl if args.ttl is not None else settings.auth.cli_token_ttl
    with open_directory(args.config) as directory:
        if args.ttl is not None and args.ttl > directory.max_token_ttl:
            print(
                f"pbx-bridge: --ttl {args.ttl} capped to auth.max_token_ttl "
                f"({directory.max_token_ttl} s)",
                file=sys.stderr,
            )
        token, expires_at = directory.issue_token(args.app, ttl)
    print(token)
    print(
        f"pbx-bridge: token {token_id(token)} expires at {_when(expires_at)}", file=sys.stderr
    )
    return 0


def _token_list(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        if args.app is not None and directory.app(args.app) is None:
            raise DirectoryError(f"no app with client id {args.app!r}")
        tokens = directory.list_tokens(args.app)
    row = f"{{:{TOKEN_ID_LEN}}}  {{:32}}  {{:>6}}  {{:25}}  {{:25}}  {{}}"
    print(row.format("ID", "CLIENT_ID", "USER", "ISSUED", "EXPIRES", "APP"))
    for t in tokens:
        when = _when(t.issued), _when(t.expires)
        print(row.format(t.id, t.client_id, t.user_id, *when, t.app_name))
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        if args.app is not None:
            revoked = directory.revoke_app_tokens(args.app)
            print(f"{revoked} tokens of app {args.app} revoked")
        elif args.token_stdin:
            token = sys.stdin.readline().strip()
            if not token:
                raise DirectoryError("no token on standard input")
            if not directory.revoke_token(token):
                raise DirectoryError("no such token (unknown, or already revoked or purged)")
            print(f"token {token_id(token)} revoked")
        else:
            info = directory.revoke_token_id(args.id)
            print(f"token {info.id} of app {info.client_id} (user {info.user_id}) revoked")
    return 0


def _app_arg(parser: argparse._ActionsContainer, help_text: str, *, required: bool = True) -> None:
    parser.add_argument(
        "--app",
        required=required,
        metavar="CLIENT_ID",
        help=help_text + " (an id that begins with '-', from before ids were hex: --app=ID)",
    )


# --------------------------------------------------------------------------- registration


def register(sub: Subcommands) -> None:
    _register_directory(sub)
    _register_app(sub)
    _register_token(sub)


def _register_directory(sub: Subcommands) -> None:
    # directory load FILE
    directory_sub = add_group(
        sub,
        "directory",
        "manage the directory (organizations, users, extensions)",
        "Manage the directory of organizations, users and extensions.",
    )
    load = add_command(
        directory_sub,
        _directory_load,
        "load",
        help="load (upsert) organizations, users and extensions from a TOML file",
        description=(
            "Load organizations (with their recordings policy: retention_days, "
            "users_may_delete), users and extensions (with their device and phone "
            "terminal setup) from a TOML file, e.g. config/directory.example.toml. "
            "Entries are inserted or updated, never deleted; the whole file is applied "
            "or, on any error, nothing is."
        ),
    )
    load.add_argument("file", metavar="FILE", help="directory TOML file")



def _register_app(sub: Subcommands) -> None:
    # app create --user ID --name NAME
    app_sub = add_group(
        sub,
        "app",
        "manage apps (OAuth clients registered to a user)",
        "Manage apps: OAuth 2.0 clients registered to a user.",
    )
    create = add_command(
        app_sub,
        _app_create,
        "create",
        help="register an app to a user; prints its client id and secret",
        description=(
            "Register an app to a user and print its client id and client secret. The "
            "secret is shown only once (only its hash is stored)."
        ),
    )
    create.add_argument(
        "--user",
        type=_positive_int,
        required=True,
        metavar="ID",
        help="id of the user the app acts for",
    )
    create.add_argument("--name", required=True, metavar="NAME", help="name of the app")

    # app list [--user ID]
    app_list = add_command(
        app_sub,
        _app_list,
        "list",
        help="list apps (client id, user, enabled or disabled, created, name)",
        description="List the registered apps. Secrets are never shown (only hashes are "
        "stored).",
    )
    app_list.add_argument(
        "--user", type=_positive_int, metavar="ID", help="only the apps of this user"
    )

    _register_app_states(app_sub)


def _register_app_states(app_sub: Subcommands) -> None:
    # app disable|enable|delete --app CLIENT_ID
    for name, func, summary, text in (
        (
            "disable",
            _app_disable,
            "disable an app: revoke its tokens, refuse it new ones",
            "Disable an app: every token of it is revoked at once (the running service "
            "refuses them from its next request on) and it gets no new token, neither "
            "from POST /oauth/token nor from `token issue`, until `app enable`.",
        ),
        (
            "enable",
            _app_enable,
            "enable a disabled app again",
            "Enable a disabled app again: it can get tokens again (the revoked ones stay "
            "revoked).",
        ),
        (
            "delete",
            _app_delete,
            "delete an app and revoke its tokens",
            "Delete an app for good: every token of it is revoked at once and its client "
            "id and secret stop working.",
        ),
    ):
        command = add_command(app_sub, func, name, help=summary, description=text)
        _app_arg(command, "the app's client id")



def _register_token(sub: Subcommands) -> None:
    # token issue --app CLIENT_ID [--ttl SECONDS]
    token_sub = add_group(sub, "token", "manage bearer tokens", "Manage OAuth 2.0 bearer tokens.")
    issue = add_command(
        token_sub,
        _token_issue,
        "issue",
        help="issue a bearer token for an app; prints only the token",
        description=(
            "Issue a bearer token for an app and print it (alone, on stdout, so that "
            "TOKEN=$(pbx-bridge token issue --app ID) works). Its id and expiry go to "
            "stderr. Without --ttl it lives auth.cli_token_ttl seconds (15 minutes by "
            "default: such a token is handled by hand and lands in shell history; apps "
            "get theirs from POST /oauth/token)."
        ),
    )
    _app_arg(issue, "the app's client id")
    issue.add_argument(
        "--ttl",
        type=_positive_int,
        metavar="SECONDS",
        help="lifetime in seconds (default: auth.cli_token_ttl, 900; capped at "
        "auth.max_token_ttl)",
    )

    # token list [--app CLIENT_ID]
    token_list = add_command(
        token_sub,
        _token_list,
        "list",
        help="list the tokens not yet expired (id, app, user, issued, expires)",
        description="List the bearer tokens not yet expired: id, app, user, when issued, "
        "when they expire. The tokens themselves are never shown (only their hashes are "
        "stored); the id names a token for `token revoke`.",
    )
    _app_arg(token_list, "only the tokens of this app", required=False)

    # token revoke ID | --token-stdin | --app CLIENT_ID
    revoke = add_command(
        token_sub,
        _token_revoke,
        "revoke",
        help="revoke a token (by its id, by the token on stdin, or every token of an app)",
        description="Revoke bearer tokens at once: the running service refuses them from "
        "its next request on. Name the token by its id from `token list` (or a unique "
        "prefix of it, 6 hex digits at least), or pass the token itself on standard input "
        "with --token-stdin, or revoke every token of an app with --app.",
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", metavar="ID", help="the token's id, as `token list` shows")
    which.add_argument(
        "--token-stdin",
        action="store_true",
        help="read the token itself from standard input (never from the command line)",
    )
    _app_arg(which, "revoke every token of this app", required=False)
