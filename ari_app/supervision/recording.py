"""Recording an answered call: the conversation's bridge is recorded by Asterisk
(an ARI bridge recording), so caller and agent land in one file named by the call id.

Which calls are recorded is a share per entity, chosen from the call id: the
same call always gets the same answer (a restart or a consult's return never
starts a second file), and a share of 100 records every call.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ari_app.ari.client import AriError
from ari_app.config.supervision import RecordingSettings
from ari_app.interactions.context import CallContext
from ari_app.interactions.session import AriUnavailable
from ari_app.logs import get_logger

log = get_logger("supervision.recording")


def chosen(call_id: str, share: float) -> bool:
    """Is this call among the `share` percent recorded? Deterministic by call id."""
    if share <= 0:
        return False
    if share >= 100:
        return True
    bucket = int(hashlib.sha256(call_id.encode()).hexdigest()[:8], 16) % 10_000
    return bucket < round(share * 100)


class CallRecording:
    """The hook the conversation calls when caller and agent are bridged."""

    def __init__(self, settings: RecordingSettings) -> None:
        self.settings = settings

    def name_for(self, call_id: str) -> str:
        """The recording's name as Asterisk takes it (below its recording spool)."""
        return f"{self.settings.subdir}/{call_id}"

    def path_for(self, recording: str) -> Path:
        """Where the app finds a recorded file (record.recording) on its host."""
        return self.settings.directory / recording

    async def start(self, ctx: CallContext) -> None:
        """Start recording the call's bridge, once per call; never raises: a
        recording that cannot start is logged, the conversation goes on."""
        rec = ctx.record
        bridge = ctx.interaction.bridges.get("main")
        if rec.recording is not None or bridge is None:
            return
        if not chosen(rec.call_id, self.settings.share_for(rec.entity)):
            return
        name = self.name_for(rec.call_id)
        try:
            ari = ctx.session.ari
            if self.settings.notice and "recording-notice" in ctx.prompts.names(ctx.language):
                # on the bridge, so the agent knows the caller has been told
                await ari.play_bridge(bridge, ctx.media("recording-notice"), ctx.language,
                                      f"{rec.call_id}-rn")
            await ari.record_bridge(bridge, name, self.settings.format)
        except (AriError, AriUnavailable) as e:
            log.warning("recording.not_started", bridge=bridge, error=str(e)[:200])
            return
        rec.recording = f"{name}.{self.settings.format}"
        ctx.emit("recording_started")
        log.info("recording.started", recording=rec.recording, bridge=bridge)
