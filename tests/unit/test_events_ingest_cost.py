"""Issue 15, ingest: the events feature renders every view of a call on every AMI event;
that render must not read the directory from the database each time (it did: one
``Directory.extension`` per view and event, a SQLite query each, a sixth of the full
ingest path's time). What it shows must stay the same, and follow a directory change."""

from __future__ import annotations

from pathlib import Path

from pbx_bridge.calls.transcript import read_events
from pbx_bridge.directory.models import DirectoryFile
from pbx_bridge.server import Services
from tests.unit.api_support import make_directory, make_settings

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "a_calls_b.jsonl"


def _feed(bridge: Services, events: list[dict[str, str]]) -> None:
    for ev in events:
        bridge.link.tracker.feed(ev)
        bridge.events.on_event(ev)


async def test_rendering_call_events_reads_the_directory_once_per_extension(
    tmp_path, monkeypatch
) -> None:
    settings = make_settings(tmp_path)
    directory = make_directory(settings)
    bridge = Services(settings, directory)
    bridge.link.reload_devices()  # the node's device map, as on a resync
    reads: list[str] = []
    real = directory.extension

    def counted(number: str):  # type: ignore[no-untyped-def]
        reads.append(number)
        return real(number)

    monkeypatch.setattr(directory, "extension", counted)
    events = read_events(FIXTURE)
    _feed(bridge, events)
    assert len(bridge.events._queue) >= 4  # ringing, answered, hangup for both phones
    links = [e.data["link"]["self"] for e in bridge.events._queue]
    assert all("/uapi/phoneCalls/" in link for link in links)
    assert len(reads) <= 2 * len(set(reads)), reads  # not once per event and view
    await _done(bridge)


async def test_the_link_owner_follows_a_directory_change(tmp_path) -> None:
    settings = make_settings(tmp_path)
    directory = make_directory(settings)
    bridge = Services(settings, directory)
    bridge.link.reload_devices()  # the node's device map, as on a resync
    events = read_events(FIXTURE)
    _feed(bridge, events)
    first = {e.extension: _owner_path(e.data) for e in bridge.events._queue}
    bridge.events._queue.clear()
    number = next(iter(first))
    ext = directory.extension(number)
    assert ext is not None
    other = next(u.id for u in directory.all_users()
                 if u.id != ext.owner and u.organization is not None
                 and directory.organization(u.organization) == directory
                 .organization_of_extension(ext))
    directory.load(DirectoryFile(extensions=[ext.model_copy(update={"owner": other})]))
    bridge.reload_directory()
    _feed(bridge, _shifted(events))
    again = {e.extension: _owner_path(e.data) for e in bridge.events._queue}
    assert again[number] == first[number].replace(f"/{ext.owner}/", f"/{other}/")
    await _done(bridge)


def _owner_path(data: dict[str, object]) -> str:
    """The PhoneCall link without the call id (a new call has a new one)."""
    link = data["link"]
    assert isinstance(link, dict)
    return str(link["self"]).rsplit("/", 1)[0]


async def _done(bridge: Services) -> None:
    """Never started (no AMI link): let the announced events land, then close the db."""
    await bridge.events.drained()
    bridge.directory.close()


def _shifted(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same call again, as a new one (other Uniqueids and Linkedid)."""
    out = []
    for ev in events:
        ev = dict(ev)
        for key, value in ev.items():
            if key.endswith(("Uniqueid", "Linkedid")) and "." in value:
                epoch, _, seq = value.partition(".")
                ev[key] = f"{epoch}.{int(seq) + 1000}" if seq.isdigit() else value
        out.append(ev)
    return out
