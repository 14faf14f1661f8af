"""A failure seam for stores: make chosen statements fail, as a sick database would.

Attached to a real engine through SQLAlchemy's ``before_cursor_execute`` event; nothing is
patched. The raised error is SQLAlchemy's `OperationalError`, what a lost connection,
"disk I/O error" or "database is locked" look like to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

Rule = Callable[[str, Any], bool]


@dataclass
class FaultInjector:
    """Fails every statement for which a rule says so; counts what it failed."""

    rules: list[Rule] = field(default_factory=list)
    failed: int = 0
    permanent: bool = False  # raise a non-transient error instead

    @classmethod
    def attach(cls, engine: AsyncEngine) -> FaultInjector:
        faults = cls()
        event.listen(engine.sync_engine, "before_cursor_execute", faults._check)
        return faults

    def fail_writes(self, *, symbols: set[str] | None = None) -> None:
        """Fail INSERT/UPDATE statements (only the writes of `symbols`' coins, if given)."""

        def rule(statement: str, params: Any) -> bool:
            if not statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
                return False
            if symbols is None:
                return True
            coin_write = "coin_results" in statement or "INTO observations" in statement
            return coin_write and any(f"'{s}'" in repr(params) for s in symbols)

        self.rules.append(rule)

    def fail_observations_of(self, symbol: str) -> None:
        """Fail only the observations INSERT of `symbol` (after its result row went in)."""
        self.rules.append(
            lambda st, params: "INSERT INTO observations" in st and f"'{symbol}'" in repr(params)
        )

    def heal(self) -> None:
        self.rules.clear()

    def _check(self, conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if any(rule(statement, params) for rule in self.rules):
            self.failed += 1
            error = IntegrityError if self.permanent else OperationalError
            raise error(statement, params, Exception("injected: disk I/O error"))
