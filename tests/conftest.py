"""Test tiers follow the folders: tests/unit (pure), tests/integration (real Asterisk),
tests/e2e (real Asterisk and real SIP phones), tests/reliability (faults, load and
hostile input against the real Asterisk), tests/replicas (two bridge processes on one
real PostgreSQL, against the real Asterisk), tests/cluster (two real Asterisk nodes with a
SIP trunk between them, two bridge replicas on PostgreSQL, phones on both),
tests/containers (docker/'s images and compose file run with podman)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: a busy CI machine must not turn a slow example into a
# failure (tests check behaviour, never wall-clock time).
settings.register_profile("pbx_bridge", deadline=None)
settings.load_profile("pbx_bridge")

# The storage suite's backends: `database_url` (SQLite and a real PostgreSQL server).
pytest_plugins = ("tests.support.postgres",)

TIERS = {"unit", "integration", "e2e", "reliability", "containers", "replicas", "cluster"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
