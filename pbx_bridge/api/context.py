"""Typed keys under which the app factory stores what the handlers need."""

from __future__ import annotations

from aiohttp import web

from pbx_bridge.config import Settings
from pbx_bridge.directory.store import Directory
from pbx_bridge.service import Bridge

__all__ = ["BRIDGE", "DIRECTORY", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
DIRECTORY = web.AppKey("directory", Directory)
BRIDGE = web.AppKey("bridge", Bridge)
