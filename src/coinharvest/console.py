"""Terminal output shared by the commands: the consoles and the one-line error."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

__all__ = ["err", "out", "print_error"]

#: Tables and results (stdout).
out = Console()
#: Errors, progress and logs (stderr).
err = Console(stderr=True)


def print_error(message: str) -> None:
    """Print ``error: <message>`` on one line of stderr; `message` is shown literally
    (never read as Rich markup, so ``[x]`` in a value or a path survives)."""
    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
