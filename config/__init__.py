"""gpnn.config: the service's settings (environment variables, pydantic-settings)."""

from gpnn.config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
