"""The coins file of a service: re-read before each run when it changed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coinharvest.coins import load_coins
from coinharvest.errors import ConfigError
from coinharvest.logs import get_logger
from coinharvest.models import Coin

__all__ = ["CoinsFile"]

log = get_logger("service")


class CoinsFile:
    """The coins, re-read before each run when the file changed; a broken edit keeps the last
    good list (and logs why). Raises `ConfigError` only on the first read."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mtime = self._stamp()
        self._coins = load_coins(path)

    def _stamp(self) -> float | None:
        try:
            return self.path.stat().st_mtime if self.path is not None else None
        except OSError:
            return None

    def __call__(self) -> Sequence[Coin]:
        stamp = self._stamp()
        if stamp != self._mtime:
            self._mtime = stamp
            try:
                self._coins = load_coins(self.path)
                log.info("coins file %s re-read: %d coins", self.path, len(self._coins))
            except ConfigError as exc:
                log.error("coins file changed but is invalid, keeping the previous coins: %s", exc)
        return self._coins
