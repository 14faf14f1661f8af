"""Logging set-up: ``DEBUG`` namespaces, ``LOG_LEVEL`` and ``LOG_FORMAT``.

Namespaces are short, colon-separated names: ``engine``, ``limiter``, ``scheduler``,
``scheduler:tick``, ``source:coingecko``, ``store``, ``cli``. Namespace ``a:b`` is the stdlib
logger ``coinharvest.a.b``, so ``logging.getLogger(__name__)`` in ``coinharvest/engine/run.py``
is namespace ``engine:run``.

``DEBUG`` holds comma-separated patterns, as in the npm ``debug`` package:

- ``engine``: exactly that namespace;
- ``scheduler:*``: ``scheduler`` and every namespace under it;
- ``source:*coin*``: ``*`` matches any run of characters;
- ``*``: everything;
- ``-limiter``: never, even if another pattern matches.

Matching namespaces log at DEBUG, all others at ``LOG_LEVEL`` (INFO). Levels are set on the
loggers themselves, so a disabled ``log.debug(...)`` costs one level check and builds no record.

Output (stderr by default), one line per record, as `coinharvest.logformat` writes it::

    2026-11-30T10:00:01.123Z INFO engine ✅ ETH Success in 1500ms
    2026-11-30T10:00:01.125Z DEBUG limiter coingecko: start granted

``LOG_FORMAT=json`` writes one JSON object per line instead; ``LOG_LEVEL`` (debug, info,
warning, error; default info) is the level of namespaces that ``DEBUG`` does not name.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

from coinharvest.logformat import LogFormat, formatter

__all__ = ["ROOT_LOGGER", "LogLevel", "get_logger", "setup_logging"]

LogLevel = Literal["debug", "info", "warning", "error"]

#: Name of the stdlib logger that every namespace lives under.
ROOT_LOGGER = "coinharvest"


@dataclass(frozen=True, slots=True)
class _Patterns:
    """Compiled ``DEBUG`` patterns: a namespace is enabled if included and not excluded;
    the others log at `level` (``LOG_LEVEL``)."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    level: int = logging.INFO

    @classmethod
    def parse(cls, debug: str, level: int = logging.INFO) -> _Patterns:
        words = _words(debug)
        include = tuple(_compile(w) for w in words if not w.startswith("-"))
        exclude = tuple(_compile(w[1:]) for w in words if w.startswith("-") and len(w) > 1)
        return cls(include, exclude, level)

    def enabled(self, namespace: str) -> bool:
        """Whether `namespace` logs at DEBUG."""
        if any(p.fullmatch(namespace) for p in self.exclude):
            return False
        return any(p.fullmatch(namespace) for p in self.include)


def _words(debug: str) -> list[str]:
    """The patterns of a ``DEBUG`` value: separated by commas or spaces, as in npm ``debug``."""
    return [word for word in re.split(r"[,\s]+", debug) if word]


def _compile(pattern: str) -> re.Pattern[str]:
    """``a:*`` also matches ``a`` itself; any other ``*`` matches any run of characters."""
    if pattern.endswith(":*"):
        return re.compile(re.escape(pattern[:-2]) + r"(:.*)?")
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `setup_logging` installs; its type marks it for replacement.

    Without an explicit stream it writes to whatever `sys.stderr` is *at emit time*, so a
    live display that redirects stderr (Rich's progress bar) prints log lines above itself
    instead of tearing through it.
    """

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


_active: _Patterns | None = None


def get_logger(namespace: str) -> logging.Logger:
    """The logger of `namespace` (``"source:coingecko"`` → ``coinharvest.source.coingecko``).

    After `setup_logging`, its level follows ``DEBUG``, also for loggers first asked for later.
    """
    logger = logging.getLogger(_logger_name(namespace))
    if _active is not None:
        _apply(logger, _active)
    return logger


def setup_logging(
    debug: str = "",
    *,
    stream: TextIO | None = None,
    fmt: LogFormat = "text",
    level: LogLevel = "info",
) -> None:
    """Send coinharvest's logs to `stream` (default stderr) as `fmt`: DEBUG for namespaces in
    `debug`, `level` for the others.

    Idempotent: a second call replaces the handler and levels of the first. Records do not
    propagate past the ``coinharvest`` logger, so an embedding application's root handlers
    do not print them twice.
    """
    global _active
    _active = _Patterns.parse(debug, logging.getLevelNamesMapping()[level.upper()])
    root = logging.getLogger(ROOT_LOGGER)
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream)
    handler.setFormatter(formatter(fmt, ROOT_LOGGER, terminal=_is_terminal(handler.stream)))
    root.addHandler(handler)
    root.propagate = False
    _apply(root, _active)
    for name in _plain_namespaces(debug):
        logging.getLogger(_logger_name(name))  # create now, so its level is set below
    for logger in _coinharvest_loggers():
        _apply(logger, _active)


def _apply(logger: logging.Logger, patterns: _Patterns) -> None:
    enabled = patterns.enabled(_namespace(logger.name))
    logger.setLevel(logging.DEBUG if enabled else patterns.level)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def _plain_namespaces(debug: str) -> list[str]:
    """Namespaces named by patterns without inner wildcards (``a``, ``a:*``, ``-a``).

    Their loggers are created at set-up, so a module that later calls ``logging.getLogger``
    (not `get_logger`) for them still gets the right level.
    """
    words = (word.lstrip("-") for word in _words(debug))
    names = (word[:-2] if word.endswith(":*") else word for word in words)
    return [name for name in names if name and "*" not in name]


def _coinharvest_loggers() -> list[logging.Logger]:
    prefix = ROOT_LOGGER + "."
    existing = list(logging.Logger.manager.loggerDict.items())
    return [
        logger
        for name, logger in existing
        if name.startswith(prefix) and isinstance(logger, logging.Logger)
    ]


def _logger_name(namespace: str) -> str:
    dotted = namespace.strip(":").replace(":", ".")
    return f"{ROOT_LOGGER}.{dotted}" if dotted else ROOT_LOGGER


def _namespace(logger_name: str) -> str:
    if logger_name == ROOT_LOGGER:
        return ""
    return logger_name.removeprefix(ROOT_LOGGER + ".").replace(".", ":")
