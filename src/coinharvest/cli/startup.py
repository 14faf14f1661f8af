"""What every command does first: read the settings, then set up logging as they say."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coinharvest.config import Settings

__all__ = ["settings_and_logging"]


def settings_and_logging(*, warn: bool = True) -> Settings:
    """The settings (environment and ``.env``), with logging set up from ``DEBUG``,
    ``LOG_LEVEL`` and ``LOG_FORMAT``; `warn`: log the deprecated settings in use."""
    from coinharvest.config import deprecation_warnings, load_settings
    from coinharvest.logs import get_logger, setup_logging

    settings = load_settings()
    setup_logging(settings.debug, fmt=settings.log_format, level=settings.log_level)
    if warn:
        for warning in deprecation_warnings(settings):
            get_logger("cli").warning(warning)
    return settings
