"""A directory of a provider's size, generated (issue 16): ``organizations`` organizations
(codes 1000, 1001, ...), each with ``users`` / ``organizations`` users and
``extensions`` / ``organizations`` extensions spread over its users; extension numbers
``<code>*<n>`` on PJSIP devices of the same name. Recording as a provider mixes it: 3 in
5 extensions record on demand (star1), 1 in 5 always, 1 in 5 not at all; formats alternate.

    .venv/bin/python -m bench.provider_directory --extensions 50000 --out /tmp/dir.toml

writes it as a `pbx-bridge directory load` file; `provider_directory()` gives the same
rows as a `DirectoryFile` (bench/directory_scale.py loads it without the TOML step).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pbx_bridge.directory.models import (
    DirectoryFile,
    Extension,
    Organization,
    RecordingSetup,
    User,
)

__all__ = ["provider_directory", "recording_of", "to_toml"]


def recording_of(index: int, *, flip: bool = False) -> RecordingSetup:
    """The ``index``-th extension's recording setup (``flip``: one in 100 changed, for a
    directory change of 1%)."""
    kind = index % 5
    return RecordingSetup(
        enabled=(kind != 4) != (flip and index % 100 == 0),
        trigger="always" if kind == 3 else "star1",
        format="wav49" if index % 2 else "wav",
    )


def provider_directory(
    organizations: int = 500, users: int = 5000, extensions: int = 50000, *, flip: bool = False
) -> DirectoryFile:
    users = min(users, extensions)  # a small directory (a baseline) keeps one each
    organizations = min(organizations, users)
    if not 1 <= organizations <= 9000:
        raise ValueError("1-9000 organizations")
    orgs = [Organization(id=i + 1, name=f"Organization {i + 1}", code=f"{1000 + i}")
            for i in range(organizations)]
    people = [User(id=u + 1, name=f"User {u + 1}", role="user",
                   organization=u % organizations + 1) for u in range(users)]
    exts = []
    for e in range(extensions):
        owner = people[e % users]
        assert owner.organization is not None
        number = f"{999 + owner.organization}*{100 + e // organizations}"
        exts.append(Extension(number=number, owner=owner.id, device=f"PJSIP/{number}",
                              recording=recording_of(e, flip=flip)))
    return DirectoryFile(organizations=orgs, users=people, extensions=exts)


def to_toml(data: DirectoryFile) -> str:
    lines: list[str] = []
    for o in data.organizations:
        lines += ["[[organizations]]", f"id = {o.id}", f'name = "{o.name}"', f'code = "{o.code}"',
                  ""]
    for u in data.users:
        lines += ["[[users]]", f"id = {u.id}", f'name = "{u.name}"', f'role = "{u.role}"',
                  f"organization = {u.organization}", ""]
    for x in data.extensions:
        r = x.recording
        lines += ["[[extensions]]", f'number = "{x.number}"', f"owner = {x.owner}",
                  f'device = "{x.device}"',
                  f'recording = {{ enabled = {str(r.enabled).lower()}, trigger = "{r.trigger}", '
                  f'format = "{r.format}" }}', ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--organizations", type=int, default=500)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--extensions", type=int, default=50000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_text(to_toml(provider_directory(args.organizations, args.users,
                                                   args.extensions)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
