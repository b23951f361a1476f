"""Prompts: the texts each language speaks (catalog) and their rendering to WAV."""

from ari_app.prompts.catalog import Prompt, PromptCatalog

__all__ = ["Prompt", "PromptCatalog"]
