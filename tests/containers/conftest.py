"""The container tier: docker/'s images and compose file, built and run with podman."""

from __future__ import annotations

import pytest

from devtools.containers import podman_missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `make test` runs this tier wherever podman is (scripts/bootstrap installs it).
    why = podman_missing()
    if why is None:
        return
    for item in items:
        if "tests/containers/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=why))
