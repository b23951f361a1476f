"""Fixtures shared by the unit tests that replay captured ARI transcripts."""

from __future__ import annotations

import pytest

from ari_app.config.loader import load_config
from ari_app.config.models import HotlineConfig
from ari_app.prompts.catalog import PromptCatalog
from tests.support.stackfix import write_test_config


@pytest.fixture(scope="session")
def capture_cfg(tmp_path_factory: pytest.TempPathFactory) -> HotlineConfig:
    """The config the transcripts were captured with (the integration tests' one)."""
    return load_config(write_test_config(tmp_path_factory.mktemp("cfg") / "hotline.yaml"))


@pytest.fixture(scope="session")
def capture_prompts(capture_cfg: HotlineConfig) -> PromptCatalog:
    return PromptCatalog.load(capture_cfg, capture_cfg.resolve(capture_cfg.prompts_dir))
