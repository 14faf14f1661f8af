"""How one log record is written: a text line for people, or a JSON object for log shippers.

Text (``LOG_FORMAT=text``, the default)::

    2026-11-30T10:00:01.123Z INFO engine ✅ ETH Success in 1500ms

ISO 8601 in UTC with milliseconds, the level, the namespace (``engine``, ``source:coingecko``;
nothing for the root logger), the message. The emoji that open the collector's progress
lines (📊 ✅ ❌ ⏸) are written only when the stream is a terminal; in a file or a pipe the
line keeps its text ("ETH Success in 1500ms") without them.

JSON (``LOG_FORMAT=json``), one object per line, keys in this order::

    {"ts": "2026-11-30T10:00:01.123Z", "level": "info", "logger": "engine",
     "msg": "ETH Success in 1500ms"}

plus ``"exc"`` (the formatted traceback) when the record carries an exception and
``"stack"`` for ``stack_info=True``. JSON never has
the emoji. The timestamp format is the one the CLI's ``--json`` output and the API use.

Both formatters are cheap: a record costs one ``getMessage`` and an f-string (the date part is
formatted once per second), which matters when a 10,000-coin run writes 20,000 lines.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Literal

__all__ = ["LogFormat", "formatter", "strip_emoji"]

LogFormat = Literal["text", "json"]

#: A run of emoji (and their joiners / variation selectors) with the space after them.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]+\\s*"
)


def strip_emoji(message: str) -> str:
    """`message` without emoji (and the space after each), for streams that are not a
    terminal: ``"✅ ETH Success"`` → ``"ETH Success"``."""
    return _EMOJI.sub("", message) if not message.isascii() else message


class _Clock:
    """Epoch seconds as ``2026-11-30T10:00:01.123Z``, the date-and-seconds part formatted
    once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int((created - second) * 1000)
        return f"{self._prefix}.{millis:03d}Z"


def _namespace(logger_name: str, root: str) -> str:
    if logger_name == root:
        return ""
    return logger_name.removeprefix(root + ".").replace(".", ":")


class TextFormatter(logging.Formatter):
    """``<ISO time> <LEVEL> [<namespace>] <message>`` (see the module docstring)."""

    def __init__(self, root: str, *, emoji: bool) -> None:
        super().__init__()
        self._root = root
        self._emoji = emoji
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not self._emoji:
            message = strip_emoji(message)
        namespace = _namespace(record.name, self._root)
        head = f"{self._clock.iso(record.created)} {record.levelname}"
        line = f"{head} {namespace} {message}" if namespace else f"{head} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self._root = root
        self._clock = _Clock()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._clock.iso(record.created),
            "level": record.levelname.lower(),
            "logger": _namespace(record.name, self._root),
            "msg": strip_emoji(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(kind: LogFormat, root: str, *, terminal: bool) -> logging.Formatter:
    """The formatter for `kind`; `terminal`: whether the stream is one (emoji in text)."""
    if kind == "json":
        return JsonFormatter(root)
    return TextFormatter(root, emoji=terminal)
