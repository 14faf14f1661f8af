"""``python -m coinharvest.emulator``: run the emulator command on its own."""

from __future__ import annotations

import typer

from coinharvest.emulator.command import emulator

if __name__ == "__main__":
    typer.run(emulator)
