"""gpnn.config: the service's settings (environment variables, pydantic-settings)."""

from gpnn.config.settings import Settings, configure_logging, get_settings

__all__ = ["Settings", "configure_logging", "get_settings"]
