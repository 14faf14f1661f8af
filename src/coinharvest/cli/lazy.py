"""Commands whose module is imported only when the command is used.

Typer builds a command's options from its function's signature, so registering a function
imports its module, and everything that module imports, on every start-up. `lazy_command`
registers a placeholder instead: the parent's ``--help`` lists it with a one-line summary,
and running it (or asking for its own ``--help``) imports the real function and hands the
command line to the command Typer builds from it, so its options, help and errors are
exactly those of the real function.

`run` is `asyncio.run` with asyncio (~40 ms) imported on first use, for the same reason.
"""

from __future__ import annotations

from collections.abc import Coroutine
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Command, Context

__all__ = ["LazyCommand", "lazy_command", "run"]

T = TypeVar("T")


class LazyCommand(TyperCommand):
    """A command that stands for ``target`` (``"package.module:function"``) until it runs."""

    #: Where the real command function is; set per command by `lazy_command`.
    target = ""

    @cached_property
    def real(self) -> Command:
        """The command Typer builds from the target function (imported now, once)."""
        module, _, name = self.target.partition(":")
        sub = typer.Typer(add_completion=False, rich_markup_mode=self.rich_markup_mode)
        sub.command(self.name)(getattr(import_module(module), name))
        return typer.main.get_command(sub)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        """Parse `args` with the real command: its context then runs the real function."""
        return self.real.make_context(info_name, args, parent=parent, **extra)


def _placeholder() -> None:
    """Never called: `LazyCommand.make_context` hands every use to the real command."""
    raise AssertionError("a lazy command ran its placeholder")  # pragma: no cover


def lazy_command(app: typer.Typer, name: str, target: str, *, summary: str) -> None:
    """Add command `name` to `app`, listed with `summary`, running `target` when used.

    :param target: ``"package.module:function"``: a Typer command function.
    :param summary: what the parent's ``--help`` shows: keep it the function's first line.
    """
    cls = type(f"Lazy_{name}", (LazyCommand,), {"target": target})
    app.command(name, cls=cls, help=summary)(_placeholder)


def run(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`; asyncio is imported here, when a command first needs it.

    The result is handed out of the task, not returned by it: on Python 3.11, `asyncio.run`
    formats the repr of its main task (result included) when it restores the SIGINT handler,
    and the repr of a 10,000-coin `RunSummary` took 1.4 s and 80 MB at the end of `collect`.
    """
    import asyncio

    result: list[T] = []

    async def main() -> None:
        result.append(await work)

    asyncio.run(main())
    return result[0]
