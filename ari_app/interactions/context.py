"""What every state can use: its interaction (session, legs, bridges), the record
and its events, the config, the prompts and the call store.

Feature dependencies are not here: each feature package's states carry their
own typed `deps` (see machine.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ari_app.config.models import HotlineConfig
from ari_app.interactions.machine import State, state_data
from ari_app.interactions.model import Interaction
from ari_app.interactions.session import CallSession
from ari_app.records.events import Recorder, RecordEvent
from ari_app.records.model import CallRecord

if TYPE_CHECKING:
    from ari_app.interactions.janitor import Janitor
    from ari_app.interactions.store import CallStore
    from ari_app.prompts.catalog import PromptCatalog


@dataclass
class CallContext:
    interaction: Interaction
    recorder: Recorder
    cfg: HotlineConfig
    prompts: PromptCatalog
    store: CallStore
    janitor: Janitor

    @property
    def session(self) -> CallSession:
        return self.interaction.session

    @property
    def record(self) -> CallRecord:
        return self.recorder.record

    @property
    def language(self) -> str:
        return self.session.language

    def emit(self, kind: str) -> RecordEvent | None:
        """Append an event with whatever the record gained since the last one.

        What the caller heard and pressed goes with it, so the events alone
        tell the whole story."""
        rec, s = self.record, self.session
        rec.prompts = s.prompts[-200:]
        rec.digits = "".join(s.digits)[-200:]
        return self.recorder.emit(kind)

    async def hang_up(self, channel_id: str) -> bool:
        """Hang a leg up; if Asterisk cannot be told now, the janitor keeps trying."""
        return await self.janitor.remove("channel", channel_id)

    async def destroy_bridge(self, bridge_id: str) -> bool:
        return await self.janitor.remove("bridge", bridge_id)

    async def checkpoint(self, state: State) -> None:
        """Save where the interaction is, so a restarted app carries on from here."""
        await self.store.checkpoint(self.interaction.id, state.name, state_data(state),
                                    self.record, self.interaction.dump(),
                                    self.recorder.snapshot())

    def media(self, *names: str, n: int | None = None, lang: str | None = None) -> list[str]:
        """Sound URIs for prompt names in the caller's language (templates expanded)."""
        lang = lang or self.session.language
        out: list[str] = []
        for name in names:
            out.extend(f"sound:hotline/{p}" for p in self.prompts.say(lang, name, n))
        return out

    def media_in(self, lang: str, *names: str) -> list[str]:
        """Sound URIs that name their language in the path, so prompts in several
        languages play as one playback (one ARI request instead of one each)."""
        root = self.cfg.asterisk_sounds_dir
        return [f"sound:{root}/{lang}/hotline/{p}" for name in names
                for p in self.prompts.say(lang, name)]
