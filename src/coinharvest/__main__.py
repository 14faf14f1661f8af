"""`python -m coinharvest` runs the CLI."""

from __future__ import annotations

from coinharvest.cli.main import main

main()
