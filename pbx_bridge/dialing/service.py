"""Click-to-call and hang-up against Asterisk (the shell around rules.py).

Placing a call: ``Originate`` with ``Async: true`` (a blocking Originate would hold an
AMI answer for the whole ring time), then a short wait until the tracker sees the new
channel with its ``PBX_CTC`` mark, so the 201 shows the call as Asterisk reports it. An
``OriginateResponse`` failure that comes first (the phone is not registered, the
number cannot be dialled) answers 409 ``pc_call_failed``; one that comes later (nobody
answered within ``waitForPickup``) just ends the call, as Asterisk's events show.

Hanging up: AMI ``Hangup`` of the extension's channels, answered once Asterisk's own
``Hangup`` events removed them from the tracker.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from pbx_bridge.calls.tracker import Call, call_id
from pbx_bridge.config import Settings
from pbx_bridge.core.feature import Event, Feature
from pbx_bridge.core.link import PbxLink
from pbx_bridge.core.nodes import NodeIdentity
from pbx_bridge.core.pbx_errors import pbx_errors
from pbx_bridge.dialing import rules
from pbx_bridge.dialing.hangup import channels_to_hang_up
from pbx_bridge.dialing.model import DialRequest
from pbx_bridge.directory.models import Extension
from pbx_bridge.directory.store import Directory
from pbx_bridge.errors import PbxBridgeError, PbxTimeout
from pbx_bridge.pbx.ami import is_success

__all__ = ["CallFailed", "DialingFeature"]

log = logging.getLogger("pbx_bridge.dialing")
_FAILURES_KEPT = 256
# A placed call's first Uniqueid starts with its node's systemname (Asterisk's own shape
# there), if that is a plain name: it goes to AMI in Originate's ChannelId.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BRIDGE_PREFIX = "pbxb"


class CallFailed(PbxBridgeError):
    """Asterisk could not place the call's first leg (its message: the AMI detail)."""

    status = 409
    code = "pc_call_failed"


class DialingFeature(Feature):
    def __init__(
        self, link: PbxLink, directory: Directory, settings: Settings,
        *, clock: Callable[[], float] = time.time,
        identity: NodeIdentity | None = None,
    ) -> None:
        self.link = link
        self.identity = identity  # the node's Asterisk SystemName, once read
        self.directory = directory
        self.settings = settings
        self.clock = clock
        # ActionID -> Reason of the OriginateResponse failures seen lately (the event
        # may be dispatched before or after the Originate's own answer is read).
        self._failures: OrderedDict[str, str] = OrderedDict()
        self.placed = 0
        link.add_feature(self)

    # ------------------------------------------------------------------ events
    def on_event(self, ev: Event) -> None:
        if ev.get("Event") != "OriginateResponse" or ev.get("Response") != "Failure":
            return
        action_id = ev.get("ActionID")
        if action_id:
            self._failures[action_id] = ev.get("Reason", "")
            while len(self._failures) > _FAILURES_KEPT:
                self._failures.popitem(last=False)

    # ------------------------------------------------------------------ placing
    def _numbers(self, extension: Extension, allow_public: bool) -> rules.Numbers:
        directory = self.directory
        org = directory.organization_of_extension(extension)

        def org_of(number: str) -> int | None:
            ext = directory.extension(number)
            owner = directory.organization_of_extension(ext) if ext is not None else None
            return owner.id if owner is not None else None

        def device_of(number: str) -> str | None:
            ext = directory.extension(number)
            return ext.device if ext is not None else None

        return rules.Numbers(org.id if org else None, org_of, device_of, allow_public)

    def _channel_id(self) -> str:
        # "<prefix>-<epoch>.<digits>", the shape of Asterisk's own Uniqueids: the tracker
        # reads the call's start second from it, and orders channels by it. The prefix is
        # the node's systemname, as in every id Asterisk numbers itself there: with
        # several nodes the call id then stays unique by node, not only by chance.
        name = self.identity.system_name if self.identity is not None else None
        prefix = name if name and _PLAIN_NAME.fullmatch(name) else _BRIDGE_PREFIX
        return f"{prefix}-{int(self.clock())}.{secrets.randbelow(10**9)}"

    def plan(self, mode: rules.Mode, request: DialRequest, query: rules.DialQuery,
             extension: Extension) -> rules.OriginatePlan:
        return rules.plan_call(
            mode, request, query, extension, self._numbers(extension, query.allow_public),
            channel_id=self._channel_id(), dial_context=self.settings.dialing.context,
        )

    async def place(self, plan: rules.OriginatePlan) -> str:
        """Originate the plan; the new call's id once Asterisk queued it (CallFailed if
        it failed before its channel showed)."""
        self.link.require_ready()
        with pbx_errors():
            resp = await self.link.ami.send_action("Originate", plan.headers())
        if not is_success(resp):
            raise CallFailed(f"Originate refused: {resp.get('Message')}")
        self.placed += 1
        new_id = call_id(plan.channel_id)
        action_id = resp.get("ActionID", "")

        def settled() -> bool:
            call = self.link.call(new_id)
            return action_id in self._failures or (
                call is not None and call.click_to_call() is not None)

        await self.link.wait_until(settled, self.settings.dialing.show_wait)
        reason = self._failures.pop(action_id, None)
        if reason is not None and self.link.call(new_id) is None:
            log.info("click-to-call %s failed: OriginateResponse reason %s", new_id, reason)
            raise CallFailed(f"Originate failed, reason {reason}")
        return new_id

    # ------------------------------------------------------------------ hanging up
    async def hang_up(self, calls: list[Call], extensions: set[str]) -> list[str]:
        """Hang up the channels of these extensions in ``calls``; the ids of the calls
        whose channels Asterisk confirmed gone (its Hangup events), in the calls' order."""
        self.link.require_ready()
        chosen = {call.id: [ch for ext in sorted(extensions)
                            for ch in channels_to_hang_up(call, ext)] for call in calls}
        targets = {cid: [ch.uniqueid for ch in chans] for cid, chans in chosen.items()}
        for chans in chosen.values():
            for ch in chans:
                with pbx_errors():
                    await self.link.ami.send_action(
                        "Hangup", {"Channel": ch.name, "Cause": "16"})
        channels = self.link.tracker.channels

        def gone() -> bool:
            return all(uid not in channels for uids in targets.values() for uid in uids)

        await self.link.wait_until(gone, self.settings.http.request_timeout)
        if not gone():
            raise PbxTimeout("Asterisk did not confirm every hang-up in time")
        return [cid for cid, uids in targets.items() if uids]
