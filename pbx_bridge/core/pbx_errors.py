"""AMI's link failures as the contract's errors, written once for every feature that
sends actions: not connected -> 503 ``pbx_unavailable``, no answer in time -> 504
``pbx_timeout``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pbx_bridge.errors import PbxTimeout, PbxUnavailable
from pbx_bridge.pbx.ami import AmiNotConnected, AmiTimeout

__all__ = ["pbx_errors"]


@contextmanager
def pbx_errors() -> Iterator[None]:
    try:
        yield
    except AmiNotConnected as exc:
        raise PbxUnavailable(str(exc)) from exc
    except AmiTimeout as exc:
        raise PbxTimeout(str(exc)) from exc
