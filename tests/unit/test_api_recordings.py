"""The recordings routes (issue 11 item 3): list, one, media (Range, ETag/304, 416,
409 while recording), DELETE, and the access matrix user/organization/admin x own/
sibling/foreign for each. Rows are put in the real catalog table, files on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pbx_bridge.config import RecordingsSettings
from pbx_bridge.directory.models import DirectoryFile, RecordingPolicy
from pbx_bridge.recordings import store as store_module
from pbx_bridge.recordings.catalog import RecordingRow
from tests.unit.api_support import EPOCH, Api, error_of
from tests.unit.test_api_access import ALLOWED, MATRIX, TARGETS, refused
from tests.unit.test_recordings_catalog import pcm_wav

CALL = "b817d2618fe6f1804333"


@pytest.fixture
async def api(aiohttp_client, tmp_path, monkeypatch) -> Api:
    api = await Api.start(aiohttp_client, tmp_path)
    api.ready(monkeypatch)
    api.bridge.recordings.settings = RecordingsSettings(monitor_dir=str(tmp_path))
    return api


def _row(api: Api, tmp_path: Path, ext: str, *, state: str = "completed",
         started: float = EPOCH, rid: str | None = None, content: bytes | None = None
         ) -> RecordingRow:
    path = tmp_path / f"{rid or ext}-{started}.wav"
    path.write_bytes(content if content is not None else pcm_wav(8000))
    row = RecordingRow(
        id=rid or "r-" + hashlib.sha256(str(path).encode()).hexdigest()[:16],
        extension=ext, call_id=CALL, view_id="01", started=started, channel="u1",
        file=path.name, host_path=str(path), started_by="api", app_id="app",
        stopped=started + 1, state=state,  # type: ignore[arg-type]
        duration=1.0, size=path.stat().st_size, sha256="x",
    )
    api.bridge.recordings.store.save(row)
    return row


def _base(target: str) -> str:
    user, ext, _ = TARGETS[target]
    return f"/uapi/recordings/{user}/{ext.replace('*', '%2A')}"


@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_access_matrix_for_every_route(api: Api, tmp_path: Path, who: str,
                                             target: str) -> None:
    row = _row(api, tmp_path, TARGETS[target][1])
    base = _base(target)
    resps = [await api.get(base, who=who), await api.get(f"{base}/{row.id}", who=who),
             await api.get(f"{base}/{row.id}/media", who=who)]
    if target in ALLOWED[who]:
        assert [r.status for r in resps] == [200, 200, 200]
        assert (await resps[0].json())["entry"][0]["id"] == row.id
        assert (await resps[1].json())["link"]["media"].endswith(f"{row.id}/media")
        assert await resps[2].read() == Path(row.host_path or "").read_bytes()
    else:
        for resp in resps:
            assert await error_of(resp) == refused(who, target)


async def test_a_foreign_recording_id_is_rec_invalid_like_an_unknown_one(
    api: Api, tmp_path: Path
) -> None:
    theirs = _row(api, tmp_path, "0003*213")  # jane's, in john's organization
    for rid in (theirs.id, "r-0000000000000000", "r-nothex", "x" * 200):
        resp = await api.get(f"{_base('own')}/{rid}")
        assert await error_of(resp) == (400, "rec_invalid")


async def test_list_newest_first_filters_paging_and_204(api: Api, tmp_path: Path) -> None:
    old = _row(api, tmp_path, "0003*210", started=EPOCH)
    new = _row(api, tmp_path, "0003*210", started=EPOCH + 60, state="failed")
    resp = await api.get(_base("own"))
    assert [e["id"] for e in (await resp.json())["entry"]] == [new.id, old.id]
    resp = await api.get(_base("own") + "?state=completed")
    assert [e["id"] for e in (await resp.json())["entry"]] == [old.id]
    resp = await api.get(_base("own") + "?since=2026-11-28T07:01:02%2B00:00&count=1")
    body = await resp.json()
    assert (body["totalResults"], body["entry"][0]["id"]) == (1, new.id)  # since EPOCH+30
    resp = await api.get(_base("own") + "?startIndex=1&count=1")
    assert [e["id"] for e in (await resp.json())["entry"]] == [old.id]
    assert (await api.get(_base("own") + f"?phoneCallId={'0' * 20}")).status == 204
    for bad in ("state=done", "since=yesterday", f"phoneCallId={CALL}&phoneCallId={CALL}"):
        assert await error_of(await api.get(_base("own") + "?" + bad)) == (400, "filter_invalid")


async def test_media_range_etag_and_bad_range(api: Api, tmp_path: Path) -> None:
    row = _row(api, tmp_path, "0003*210")
    data = Path(row.host_path or "").read_bytes()
    url = f"{_base('own')}/{row.id}/media"
    full = await api.get(url)
    assert (full.status, full.headers["Content-Type"]) == (200, "audio/wav")
    assert full.headers["Accept-Ranges"] == "bytes" and full.headers["Last-Modified"]
    assert int(full.headers["Content-Length"]) == len(data)
    part = await api.get(url, headers={"Range": "bytes=100-199"})
    assert part.status == 206 and await part.read() == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    etag = full.headers["ETag"]
    assert (await api.get(url, headers={"If-None-Match": etag})).status == 304
    assert (await api.get(url, headers={"Range": f"bytes={len(data) + 10}-"})).status == 416


async def test_media_of_a_running_recording_is_409_unless_partial(
    api: Api, tmp_path: Path
) -> None:
    row = _row(api, tmp_path, "0003*210", state="recording")
    url = f"{_base('own')}/{row.id}/media"
    assert await error_of(await api.get(url)) == (409, "rec_in_progress")
    assert (await api.get(url + "?partial=1")).status == 200
    failed = _row(api, tmp_path, "0003*210", state="failed", content=pcm_wav(0),
                  started=EPOCH + 5)
    resp = await api.get(f"{_base('own')}/{failed.id}/media")
    assert await error_of(resp) == (409, "rec_unavailable")


async def test_delete(api: Api, tmp_path: Path) -> None:
    row = _row(api, tmp_path, "0003*210")
    running = _row(api, tmp_path, "0003*210", state="recording", started=EPOCH + 5)
    url = f"{_base('own')}/{row.id}"
    # a user token may not (the demo's organization 3 does not let users delete)
    resp = await api.client.delete(url.replace("%2A", "*"), headers=api.apps.auth("john"))
    assert await error_of(resp) == (403, "access_denied")
    resp = await api.client.delete(f"{_base('own')}/{running.id}".replace("%2A", "*"),
                                   headers=api.apps.auth("org3"))
    assert await error_of(resp) == (409, "rec_in_progress")
    resp = await api.client.delete(url.replace("%2A", "*"), headers=api.apps.auth("org3"))
    assert resp.status == 204
    assert not Path(row.host_path or "").exists()
    assert await error_of(await api.get(url)) == (400, "rec_invalid")


async def test_a_file_the_bridge_may_not_delete_keeps_its_row(api: Api, tmp_path: Path,
                                                              monkeypatch) -> None:
    """Asterisk's folders are 0750 under the recommended umask 027: the bridge's group
    may read but not remove. (The tests run as root, whom permissions do not stop, so
    the refusal is the one unlink raises there.)"""
    row = _row(api, tmp_path, "0003*210")
    file = Path(row.host_path or "")

    def refused(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(Path, "unlink", refused)
    url = f"{_base('own')}/{row.id}".replace("%2A", "*")
    resp = await api.client.delete(url, headers=api.apps.auth("org3"))
    status, code = await error_of(resp)
    assert (status, code) == (500, "rec_delete_failed")
    assert file.exists() and api.bridge.recordings.store.get(row.id) is not None


def _let_users_delete(api: Api, allowed: bool) -> None:
    """Every organization's policy, through the directory as `directory load` writes it."""
    policy = RecordingPolicy(users_may_delete=allowed)
    api.directory.load(DirectoryFile(organizations=[
        org.model_copy(update={"recordings": policy}) for org in api.directory.all_organizations()
    ]))  # fmt: skip


async def _delete(api: Api, url: str, who: str):  # type: ignore[no-untyped-def]
    from yarl import URL

    return await api.client.delete(URL(url, encoded=True), headers=api.apps.auth(who))


USERS = {"john", "jane", "other"}


@pytest.mark.parametrize("users_may_delete", [False, True], ids=["users_may_not", "users_may"])
@pytest.mark.parametrize(("who", "target"), MATRIX)
async def test_delete_access_matrix(api: Api, tmp_path: Path, who: str, target: str,
                                    users_may_delete: bool) -> None:
    """user x (allowed, not allowed) x (own, foreign), organization and admin x (own,
    foreign): a user deletes its own only where its organization allows it; organization
    and admin contexts always within their scope; foreign answers as on every route."""
    _let_users_delete(api, users_may_delete)
    row = _row(api, tmp_path, TARGETS[target][1])
    resp = await _delete(api, f"{_base(target)}/{row.id}", who)
    file = Path(row.host_path or "")
    if target not in ALLOWED[who]:
        assert await error_of(resp) == refused(who, target)
    elif who in USERS and not users_may_delete:
        assert await error_of(resp) == (403, "access_denied")
    else:
        assert resp.status == 204
        assert not file.exists() and api.bridge.recordings.store.get(row.id) is None
        return
    assert file.exists() and api.bridge.recordings.store.get(row.id) is not None


@pytest.mark.parametrize("users_may_delete", [False, True])
async def test_delete_of_a_foreign_id_answers_like_an_unknown_one(
    api: Api, tmp_path: Path, users_may_delete: bool
) -> None:
    _let_users_delete(api, users_may_delete)
    sibling = _row(api, tmp_path, "0003*213")  # jane's, in john's organization
    other_org = _row(api, tmp_path, "0004*210")
    answers = set()
    for rid in (sibling.id, other_org.id, "r-0000000000000000"):
        resp = await _delete(api, f"{_base('own')}/{rid}", "john")
        answers.add((resp.status, await resp.read()))
    assert len(answers) == 1 and next(iter(answers))[0] == 400
    assert api.bridge.recordings.store.get(sibling.id) is not None
    assert api.bridge.recordings.store.get(other_org.id) is not None

async def test_a_list_page_reads_only_that_page_from_the_database(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy extension has 100,000 recordings (docs/performance.md): a page is counted
    and cut by the database, never every row read and sliced here."""
    rows = [_row(api, tmp_path, "0003*210", started=EPOCH + i, rid=f"r-{i:016x}")
            for i in range(30)]
    newest_first = [r.id for r in reversed(rows)]
    read: list[object] = []
    real = store_module._row
    monkeypatch.setattr(store_module, "_row", lambda values: read.append(1) or real(values))

    resp = await api.get(_base("own") + "?startIndex=10&count=5")
    body = await resp.json()
    assert [e["id"] for e in body["entry"]] == newest_first[10:15]
    assert (body["startIndex"], body["itemsPerPage"], body["totalResults"]) == (10, 5, 30)
    assert len(read) == 5
    resp = await api.get(_base("own") + "?state=completed&startIndex=28")
    assert [e["id"] for e in (await resp.json())["entry"]] == newest_first[28:]
    assert (await api.get(_base("own") + "?startIndex=30")).status == 204
    assert len(read) == 7
