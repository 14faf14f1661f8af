"""How ``--help`` reads: Typer's rich help, with two corrections for every command.

- A flag (``--json``, ``--all``, ``--help``) shows no ``<bool>`` type label: it takes no
  value, so a type only confuses.
- Docstring paragraphs are reflowed to the terminal's width: a single line break inside a
  paragraph is a space (Typer keeps it, so a paragraph wrapped for 100 columns in the source
  came out ragged at 80). Blank lines still separate paragraphs, and a line starting with
  ``-`` or ``*`` (a list item) or an indented line keeps its break.

`install` patches Typer once per process. `typer.rich_utils` costs ~0.1 s to import, so its
part is patched only when help is about to be printed, never at start-up.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperCommand, TyperGroup, TyperOption

__all__ = ["install", "reflow"]

#: A line break that joins two lines of one paragraph (not before a list item or an indent).
_SOFT_BREAK = re.compile(r"\n(?![-*] |\s)")


def reflow(paragraphs: list[str], markup_mode: Any = None) -> str:
    """`paragraphs` joined by blank lines, each one's single line breaks made spaces."""
    return "\n\n".join(
        p if p.startswith("\b") else _SOFT_BREAK.sub(" ", p.strip()) for p in paragraphs
    )


def _no_flag_type(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
_installed: list[bool] = []


def _patch_rich_utils() -> None:
    """Reflow help paragraphs (imports `typer.rich_utils`: call only when printing help)."""
    from typer import rich_utils

    rich_utils._fix_linebreaks = reflow


def _with_rich_patch(format_help: Any) -> Any:
    def patched(self: Any, ctx: Any, formatter: Any) -> Any:
        _patch_rich_utils()
        return format_help(self, ctx, formatter)

    return patched


def install() -> None:
    """Apply both corrections to every Typer command of this process (idempotent)."""
    if _installed:
        return
    _installed.append(True)
    TyperOption.display_type_rich = _no_flag_type  # type: ignore[method-assign]
    for cls in (TyperCommand, TyperGroup):
        cls.format_help = _with_rich_patch(cls.format_help)  # type: ignore[method-assign]
