"""The command line: `main` (the ``coinharvest`` entry point), one module per command group,
`render` (every Rich table), `progress` and `console`. Nothing below this package imports it.
"""

from __future__ import annotations

from coinharvest.cli.main import app, main

__all__ = ["app", "main"]
