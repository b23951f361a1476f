"""Configuration: one YAML file, validated at load into typed objects."""

from ari_app.config.loader import ConfigError, load_config
from ari_app.config.models import HotlineConfig

__all__ = ["ConfigError", "HotlineConfig", "load_config"]
