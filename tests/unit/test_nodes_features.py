"""Several PBX nodes (issue 16): the shared features hear every node. A transcript
captured from the real Asterisk (tests/fixtures/a_calls_b: a call with a *1 recording)
is replayed into two nodes' links, node 2's copy as node 2's Asterisk would send it (its
systemname in front of every Uniqueid and Linkedid, its own extensions): the recordings
catalog and the events get rows and events from both, each tagged with its node, every id
unique; node 2's row is finished from node 2's recordings folder (``[[pbx]] recordings``)
and its media is served from there; each node's reconciler leaves the other's rows alone.
The real two-Asterisk test is tests/integration/test_nodes_recordings.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from pbx_bridge.api.app import create_app
from pbx_bridge.calls.transcript import read_events
from pbx_bridge.config import ConfigError, PbxNodeSettings, RecordingsSettings, load_settings
from pbx_bridge.directory.models import DirectoryFile
from pbx_bridge.recordings.catalog import RecordingRow
from pbx_bridge.recordings.reconcile import KnownFile, Scan, plan
from pbx_bridge.recordings.store import CatalogFilter
from pbx_bridge.server import Services
from pbx_bridge.storage.schema import events
from tests.unit.api_support import Apps, make_directory, make_settings
from tests.unit.test_recordings_catalog import pcm_wav

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# a_calls_b: 0003*210 (John) calls 0003*211 (John's desk 2) and records with *1.
RENAMED = {"0003*210": "0003*212", "0003*211": "0003*213"}  # Jane's: node pbx2
_ID_KEY = re.compile(r".*(Uniqueid|Linkedid)")


def as_node2(ev: dict[str, str]) -> dict[str, str]:
    """The event as node 2's Asterisk sends it: systemname pbx2, Jane's extensions."""
    out = {}
    for key, value in ev.items():
        for old, new in RENAMED.items():
            value = value.replace(old, new)
        if _ID_KEY.fullmatch(key) and value[:1].isdigit():
            value = f"pbx2-{value}"
        out[key] = value
    return out


def stamped_file(transcript: list[dict[str, str]]) -> str:
    """The file the transcript's PBX_REC stamp names (relative to the monitor folder)."""
    for ev in transcript:
        stamp = ev.get("ChanVariable(PBX_REC)", "")
        if "|" in stamp:
            return stamp.split("|", 1)[1]
    raise AssertionError("no PBX_REC stamp in the transcript")


class TwoNodes:
    def __init__(self, services: Services, client: Any, apps: Apps, folders: list[Path]):
        self.services, self.client, self.apps, self.folders = services, client, apps, folders
        self.one, self.two = services.nodes.all

    async def replay(self) -> None:
        """Node 1 hears the transcript as captured, node 2 its own copy, interleaved
        (two Asterisks talk at once); the rows finished and the events stored."""
        first = read_events(FIXTURES / "a_calls_b.jsonl")
        second = [as_node2(ev) for ev in first]
        for ev1, ev2 in zip(first, second, strict=True):
            await self.one.link._on_event(ev1)
            await self.two.link._on_event(ev2)
        async with asyncio.timeout(20):
            while {r.state for r in await self.rows()} != {"completed"}:
                await asyncio.sleep(0.02)
        await self.services.events.drained()

    async def rows(self) -> list[RecordingRow]:
        return await asyncio.to_thread(self.services.recordings.store.select,
                                       CatalogFilter())


@pytest.fixture
async def nodes(aiohttp_client: Any, tmp_path: Path) -> TwoNodes:
    folders = [tmp_path / "pbx1-monitor", tmp_path / "pbx2-monitor"]
    base = make_settings(tmp_path)
    recordings = RecordingsSettings(monitor_dir=str(folders[0]), settle_interval=0.02,
                                    always_grace=60.0)
    entries = [
        PbxNodeSettings(**{**dict(base.ami), "name": "pbx1"}),
        PbxNodeSettings(**{**dict(base.ami), "name": "pbx2",
                           "recordings": {"monitor_dir": str(folders[1])}}),
    ]
    settings = base.model_copy(update={"pbx": entries, "recordings": recordings})
    directory = make_directory(settings)
    jane = [e.model_copy(update={"node": "pbx2"}) for e in directory.extensions_of_user(13)]
    directory.load(DirectoryFile(extensions=jane))
    transcript = read_events(FIXTURES / "a_calls_b.jsonl")
    for folder, file in ((folders[0], stamped_file(transcript)),
                         (folders[1], stamped_file([as_node2(e) for e in transcript]))):
        (folder / file).parent.mkdir(parents=True)
        (folder / file).write_bytes(pcm_wav(8000 if folder == folders[0] else 4000))
    services = Services(settings, directory)
    client = await aiohttp_client(TestServer(create_app(settings, directory, services,
                                                        manage_bridge=False)))
    return TwoNodes(services, client, Apps.create(directory), folders)


async def test_catalog_rows_of_both_nodes_each_with_its_node_and_folder(
    nodes: TwoNodes,
) -> None:
    await nodes.replay()
    rows = {row.extension: row for row in await nodes.rows()}
    assert {ext: row.node for ext, row in rows.items()} == {
        "0003*210": "pbx1", "0003*212": "pbx2"}
    one, two = rows["0003*210"], rows["0003*212"]
    assert one.id != two.id and one.call_id != two.call_id
    # Each finished from its own node's folder: node 2's file is half as long.
    assert (one.duration, two.duration) == (1.0, 0.5)
    assert two.host_path is not None and two.host_path.startswith(str(nodes.folders[1]))

    # The API lists each extension's rows, whatever its node, and serves node 2's file.
    got = await nodes.client.get("/uapi/recordings/@me/0003*212",
                                 headers=nodes.apps.auth("jane"))
    (entry,) = (await got.json())["entry"]
    assert entry["id"] == two.id
    media = await nodes.client.get(f"/uapi/recordings/@me/0003*212/{two.id}/media",
                                   headers=nodes.apps.auth("jane"))
    assert media.status == 200
    assert await media.read() == Path(two.host_path).read_bytes()


async def test_events_of_both_nodes_each_with_its_node(nodes: TwoNodes) -> None:
    await nodes.replay()
    db = nodes.services.directory.database
    with db.transaction() as conn:
        stored = conn.execute(select(events.c.id, events.c.type, events.c.extension,
                                     events.c.node)).all()
    by_node: dict[str | None, set[tuple[str, str]]] = {}
    for _id, kind, ext, node in stored:
        by_node.setdefault(node, set()).add((kind, ext))
    assert set(by_node) == {"pbx1", "pbx2"}
    for node, (a, b) in (("pbx1", ("0003*210", "0003*211")),
                         ("pbx2", ("0003*212", "0003*213"))):
        assert {("call.ringing", a), ("call.answered", b), ("call.hangup", a),
                ("recording.started", a), ("recording.completed", a)} <= by_node[node]
        assert {ext for _, ext in by_node[node]} == {a, b}
    assert len({row[0] for row in stored}) == len(stored)  # ids unique


async def test_each_nodes_reconciler_leaves_the_other_nodes_rows_alone(
    nodes: TwoNodes,
) -> None:
    await nodes.replay()
    for folder in nodes.folders:  # both files gone
        for wav in folder.rglob("*.wav"):
            wav.unlink()
    one, two = nodes.services.recordings.nodes
    await one.reconciler.run()
    states = {r.node: r.state for r in await nodes.rows()}
    assert states == {"pbx1": "missing", "pbx2": "completed"}
    await two.reconciler.run()
    states = {r.node: r.state for r in await nodes.rows()}
    assert states == {"pbx1": "missing", "pbx2": "missing"}


def test_a_pass_over_a_shared_folder_changes_its_own_nodes_rows_only(tmp_path: Path) -> None:
    # Two nodes writing into one folder: node 1's pass proves node 2's file gone, and
    # still leaves node 2's row to node 2's own pass.
    scan = Scan(complete=[tmp_path])
    gone = str(tmp_path / "3" / "0003*212" / "2026-11-28" / "x.wav")
    known = [KnownFile("r-2", "completed", gone, "0003*212", "c" * 20, 1.0, True, "pbx2")]
    kw: dict[str, Any] = {"live_paths": set(), "live_calls": set(),
                          "owner_of": lambda n: None, "started_by": lambda n: "pbx"}
    mine = plan(scan, known, node="pbx1", owns=lambda n: n in ("pbx1", None), **kw)
    theirs = plan(scan, known, node="pbx2", owns=lambda n: n == "pbx2", **kw)
    assert (mine.vanished, theirs.vanished) == ([], [("r-2", gone)])


def test_a_node_reads_its_recordings_where_its_entry_says(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[recordings]\nhost_root = "/mnt/all"\n'
                    '[[pbx]]\nname = "pbx1"\n[[pbx]]\nname = "pbx2"\n'
                    '[pbx.recordings]\nmonitor_dir = "/mnt/pbx2/monitor"\n')
    settings = load_settings(path)
    one, two = (n.recordings.applied_to(settings.recordings) for n in settings.nodes())
    assert (one.monitor_dir, one.host_root) == ("/var/spool/asterisk/monitor", "/mnt/all")
    assert (two.monitor_dir, two.host_root) == ("/mnt/pbx2/monitor", "/mnt/all")
    path.write_text('[[pbx]]\nname = "pbx1"\n[pbx.recordings]\ndirectory = "/x"\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_settings(path)
