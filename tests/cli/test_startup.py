"""CLI start-up stays cheap: ``import coinharvest.cli`` (all ``--help`` needs) loads no
database, web or HTTP library; commands import what they need when they run.

The lazily registered ``emulator`` command must look and behave exactly like the function it
stands for: same one-line summary in ``coinharvest --help``, same ``emulator --help``, same
option checks.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import version

import typer
from typer.testing import CliRunner

import coinharvest
from coinharvest.cli.main import EMULATOR_SUMMARY, app
from coinharvest.emulator.command import emulator

HEAVY = "('sqlalchemy','fastapi','uvicorn','httpx','aiohttp','alembic')"
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
runner = CliRunner()


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import coinharvest.cli, sys; print(sorted(m for m in {HEAVY} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_version_is_still_the_installed_one() -> None:
    assert coinharvest.__version__ == version("coinharvest")
    result = runner.invoke(app, ["version"], env=ENV)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"coinharvest {version('coinharvest')}"


def test_version_command_prints_the_same_as_a_user_runs_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coinharvest", "version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"coinharvest {version('coinharvest')}\n"


def test_emulator_summary_is_the_first_line_of_its_docstring() -> None:
    doc = inspect.getdoc(emulator)
    assert doc is not None
    assert doc.partition("\n\n")[0].replace("\n", " ") == EMULATOR_SUMMARY
    listing = runner.invoke(app, ["--help"], env=ENV).stdout
    assert f"emulator  {EMULATOR_SUMMARY}" in listing


def eager_app() -> typer.Typer:
    """The root app as it was: `emulator` registered directly (plus one more command, so
    Typer keeps a group and the usage line reads ``... emulator [OPTIONS]``)."""
    eager = typer.Typer(add_completion=False, rich_markup_mode="rich")
    eager.command("emulator")(emulator)
    eager.command("other")(lambda: None)
    return eager


def test_emulator_help_is_the_real_commands_help() -> None:
    lazy = runner.invoke(app, ["emulator", "--help"], env=ENV, prog_name="coinharvest")
    eager = runner.invoke(eager_app(), ["emulator", "--help"], env=ENV, prog_name="coinharvest")
    assert lazy.exit_code == eager.exit_code == 0
    assert "--nano-rate-limit-body" in lazy.stdout
    assert lazy.stdout == eager.stdout


def test_emulator_runs_the_real_function_and_its_checks() -> None:
    args = ["emulator", "--nano-rate-limit-body", "xml"]
    lazy = runner.invoke(app, args, env=ENV, prog_name="coinharvest")
    eager = runner.invoke(eager_app(), args, env=ENV, prog_name="coinharvest")
    assert lazy.exit_code == eager.exit_code == 2
    assert "use 'json' or 'text'" in lazy.output
    assert lazy.output == eager.output
