"""What a state can use: the call's session and record, the config, the prompts, the stores.

Built once per call by the runner from dependencies the app built at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ari_app.calls.session import CallSession
from ari_app.config.models import HotlineConfig
from ari_app.records.model import CallRecord

if TYPE_CHECKING:
    from ari_app.calls.store import CallStore
    from ari_app.prompts.catalog import PromptCatalog


@dataclass
class CallContext:
    session: CallSession
    record: CallRecord
    cfg: HotlineConfig
    prompts: PromptCatalog
    store: CallStore
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def language(self) -> str:
        return self.session.language

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
