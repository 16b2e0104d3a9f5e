"""CLI commands: ``directory load``, ``app create``, ``token issue``.

Errors are raised as exceptions with a one-line message; ``pbx_bridge.cli.main`` prints
``pbx-bridge: error: <message>`` and exits 1.
"""

from __future__ import annotations

import argparse
import sys

from pbx_bridge.config import load_settings
from pbx_bridge.directory.store import Directory

__all__ = ["open_directory", "register"]


def _positive_int(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="settings TOML file (default: $PBX_BRIDGE_CONFIG, else built-in defaults)",
    )


def open_directory(config: str | None) -> Directory:
    """The directory database named by the settings (``[directory] database``)."""
    settings = load_settings(config)
    return Directory.open(
        settings.directory.database,
        token_ttl=settings.auth.token_ttl,
        max_token_ttl=settings.auth.max_token_ttl,
    )


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


def _token_issue(args: argparse.Namespace) -> int:
    with open_directory(args.config) as directory:
        if args.ttl is not None and args.ttl > directory.max_token_ttl:
            print(
                f"pbx-bridge: --ttl {args.ttl} capped to auth.max_token_ttl "
                f"({directory.max_token_ttl} s)",
                file=sys.stderr,
            )
        token, expires_at = directory.issue_token(args.app, args.ttl)
    print(token)
    print(
        f"pbx-bridge: token expires at {expires_at.isoformat(timespec='seconds')}", file=sys.stderr
    )
    return 0


# --------------------------------------------------------------------------- registration


def register(sub: argparse._SubParsersAction) -> None:
    # directory load FILE
    directory = sub.add_parser(
        "directory",
        help="manage the directory (organizations, users, extensions)",
        description="Manage the directory of organizations, users and extensions.",
    )
    directory_sub = directory.add_subparsers(
        dest="directory_command", required=True, metavar="COMMAND"
    )
    load = directory_sub.add_parser(
        "load",
        help="load (upsert) organizations, users and extensions from a TOML file",
        description=(
            "Load organizations, users and extensions (with their device and phone "
            "terminal setup) from a TOML file, e.g. config/directory.example.toml. "
            "Entries are inserted or updated, never deleted; the whole file is applied "
            "or, on any error, nothing is."
        ),
    )
    load.add_argument("file", metavar="FILE", help="directory TOML file")
    _add_config(load)
    load.set_defaults(func=_directory_load)

    # app create --user ID --name NAME
    app = sub.add_parser(
        "app",
        help="manage apps (OAuth clients registered to a user)",
        description="Manage apps: OAuth 2.0 clients registered to a user.",
    )
    app_sub = app.add_subparsers(dest="app_command", required=True, metavar="COMMAND")
    create = app_sub.add_parser(
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
    _add_config(create)
    create.set_defaults(func=_app_create)

    # token issue --app CLIENT_ID [--ttl SECONDS]
    token = sub.add_parser(
        "token",
        help="manage bearer tokens",
        description="Manage OAuth 2.0 bearer tokens.",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    issue = token_sub.add_parser(
        "issue",
        help="issue a bearer token for an app; prints only the token",
        description=(
            "Issue a bearer token for an app and print it (alone, on stdout, so that "
            "TOKEN=$(pbx-bridge token issue --app ID) works). Its expiry goes to stderr."
        ),
    )
    issue.add_argument(
        "--app",
        required=True,
        metavar="CLIENT_ID",
        help="the app's client id (an id that begins with '-', from before ids were hex: "
        "--app=ID)",
    )
    issue.add_argument(
        "--ttl",
        type=_positive_int,
        metavar="SECONDS",
        help="lifetime in seconds (default: auth.token_ttl; capped at auth.max_token_ttl)",
    )
    _add_config(issue)
    issue.set_defaults(func=_token_issue)
