"""What commands do first: read the settings, set up logging as they say, and (read-only
commands) check that the database exists before anything would create it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coinharvest.config import Settings

__all__ = ["missing_database", "settings_and_logging"]


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


def missing_database(settings: Settings) -> Path | None:
    """The configured SQLite file when it does not exist (None: it does, or PostgreSQL).

    :raises ConfigError: a bad ``DATABASE_URL``.
    """
    from coinharvest.storage.database import database_url, sqlite_path

    path = sqlite_path(database_url(settings))
    return path if path is not None and not path.exists() else None
