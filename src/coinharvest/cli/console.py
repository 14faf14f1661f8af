"""Terminal output shared by the commands: the consoles and the one-line error."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.text import Text

__all__ = ["err", "out", "print_error"]

#: Tables and results (stdout). Piped into a file or another tool, tables get 160 columns
#: instead of Rich's 80, so values aren't cut (COLUMNS still wins when set).
out = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
#: Errors, progress and logs (stderr).
err = Console(stderr=True)


def print_error(message: str) -> None:
    """Print ``error: <message>`` on one line of stderr; `message` is shown literally
    (never read as Rich markup, so ``[x]`` in a value or a path survives)."""
    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
