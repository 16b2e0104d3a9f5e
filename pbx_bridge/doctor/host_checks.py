"""Checks that join Asterisk's answers with this host: the monitor folder, and the
recording policy in AstDB against the directory."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Mapping
from pathlib import Path

from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.doctor.probe import Denied, Pbx
from pbx_bridge.doctor.report import Finding, cannot, failed, passed
from pbx_bridge.recording.astdb import expected_policy
from pbx_bridge.recording.variables import ASTDB_FAMILY


def writable_by(st: os.stat_result, user: str, group: str) -> bool | None:
    """May `user` (with primary `group`) create files in a folder with this stat?
    None if that user is unknown on this host."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return None
    if pw.pw_uid == 0:
        return True
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    if group:
        try:
            gids.add(grp.getgrnam(group).gr_gid)
        except KeyError:
            pass
    need = stat.S_IWUSR | stat.S_IXUSR
    if st.st_uid == pw.pw_uid:
        return st.st_mode & need == need
    if st.st_gid in gids:
        return st.st_mode & (need >> 3) == need >> 3
    return st.st_mode & (need >> 6) == need >> 6


def _folder_here(folder: Path, setting: str) -> Finding | os.stat_result:
    """The folder as this host (the bridge's user) sees it: its stat, or what is wrong."""
    check = "monitor-folder"
    if not folder.is_dir():
        return failed(check, f"{folder} is not a folder on this host", "create it as "
                      f"Asterisk's monitor folder (<astspooldir>/monitor) or set {setting} "
                      "to where this host sees it")
    if not os.access(folder, os.R_OK | os.X_OK):
        return failed(check, f"{folder} is not readable by this user", "add this user to "
                      "Asterisk's group (usermod -aG asterisk <user>); README, 'Recordings "
                      "permissions'")
    return folder.stat()


async def monitor_folder(pbx: Pbx, monitor_dir: str,
                         setting: str = "[recordings] monitor_dir") -> Finding:
    """``monitor_dir``: where this host reads the node's recordings; ``setting``: the
    key that says so, for the fix."""
    folder = Path(monitor_dir)
    check = "monitor-folder"
    here = _folder_here(folder, setting)
    if isinstance(here, Finding):
        return here
    try:
        core = await pbx.core_settings()
    except Denied:
        return cannot(check, "CoreSettings refused", "give write class system or reporting")
    user = core.get("CoreRunUser", "") or "root"  # no runuser: as whoever started it
    ok = writable_by(here, user, core.get("CoreRunGroup", ""))
    if ok is None:
        return cannot(check, f"Asterisk's user {user!r} is unknown on this host",
                      f"check that {user} may write {folder}")
    if not ok:
        return failed(check, f"{folder} is not writable by Asterisk's user {user}",
                      f"chown {user} {folder} (or chmod g+w with its group)")
    return passed(check, f"{folder}: readable here, writable by Asterisk ({user})")


async def astdb_policy(pbx: Pbx, directory: Directory, base_dir: str,
                       own: Mapping[str, Extension]) -> Finding:
    """``own``: device -> extension of this node's extensions (its AstDB holds their
    policy only); ``base_dir``: [recordings] directory."""
    check = "astdb-policy"
    try:
        rows = await pbx.list_action("DBGetTree", {"Family": ASTDB_FAMILY})
    except Denied:
        return cannot(check, "DBGetTree refused", "give write class system or reporting")
    except LookupError:
        rows = []
    prefix = f"/{ASTDB_FAMILY}/"
    have = {r["Key"].removeprefix(prefix): r.get("Val", "") for r in rows
            if r.get("Event") == "DBGetTreeResponse" and "Key" in r}
    want = expected_policy(directory, base_dir, own)
    wrong = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
    if wrong:
        return failed(check, f"{len(wrong)} AstDB keys differ from the directory: "
                      + ", ".join(wrong[:5]) + ("..." if len(wrong) > 5 else ""),
                      "start (or restart) pbx-bridge serve, which writes the policy, after "
                      "'pbx-bridge directory load'")
    return passed(check, f"AstDB {ASTDB_FAMILY}/ holds the directory's {len(want)} keys")
