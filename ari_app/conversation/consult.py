"""Consult (attended) transfer: placeholder until the consult states land."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ari_app.interactions.context import CallContext
from ari_app.interactions.machine import State

if TYPE_CHECKING:
    from ari_app.conversation.states import Talking


def start_consult(talking: Talking, ctx: CallContext, code: str) -> State | None:
    return None
