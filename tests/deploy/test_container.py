"""deploy/Containerfile: its required instructions, its entry point and health check, and its
install step performed in a clean venv (no container daemon needed).

The image itself is built only where a container engine answers (``docker info`` /
``podman info``); elsewhere that test is skipped.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .containerfile import Instruction, exec_form, read_instructions

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
DATA = "/var/lib/coinharvest"


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return read_instructions(CONTAINERFILE)


def _stage(instructions: list[Instruction], keyword: str, stage: int) -> list[str]:
    """Arguments of `keyword` in build stage `stage`, in order."""
    return [i.args for i in instructions if i.stage == stage and i.keyword == keyword]


def _final(instructions: list[Instruction], keyword: str) -> list[str]:
    """Arguments of `keyword` in the final (runtime) stage, in order."""
    return _stage(instructions, keyword, max(i.stage for i in instructions))


def test_it_is_multi_stage_and_the_runtime_is_slim(instructions: list[Instruction]) -> None:
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "build the wheel in one stage, run from another"
    assert "-slim" in froms[-1] and froms[-1].endswith("AS runtime")
    assert any("pip wheel" in a for a in _stage(instructions, "RUN", 0))
    assert any("--no-index" in a for a in _final(instructions, "RUN")), "runtime installs wheels"


def test_the_runtime_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    users = _final(instructions, "USER")
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", "")


def test_data_volume_database_and_stop_signal(instructions: list[Instruction]) -> None:
    volumes = " ".join(_final(instructions, "VOLUME"))
    assert DATA in volumes
    env = " ".join(_final(instructions, "ENV"))
    assert f"COINHARVEST_DB={DATA}/coinharvest.db" in env
    assert "HTTP_HOST=0.0.0.0" in env, "reachable from outside the container"
    assert _final(instructions, "STOPSIGNAL") == ["SIGTERM"]
    assert _final(instructions, "WORKDIR")[-1] == DATA


def test_the_command_is_coinharvest_run(instructions: list[Instruction]) -> None:
    entry = exec_form(_final(instructions, "ENTRYPOINT")[-1])
    cmd = exec_form(_final(instructions, "CMD")[-1])
    assert entry == ["coinharvest-entrypoint"]
    assert cmd == ["coinharvest", "run"]
    copies = " ".join(_final(instructions, "COPY"))
    assert "deploy/entrypoint.sh /usr/local/bin/coinharvest-entrypoint" in copies


def test_the_build_context_keeps_what_the_image_copies(instructions: list[Instruction]) -> None:
    """.dockerignore excludes everything but what the COPY lines name."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines
    copied = [
        source
        for i in instructions
        if i.keyword == "COPY" and "--from=" not in i.args
        for source in [w for w in i.args.split() if not w.startswith("--")][:-1]
    ]
    assert copied and {c.rstrip("/") for c in copied} <= kept, (copied, kept)


def _stub_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``coinharvest`` only prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "coinharvest"
    stub.write_text('#!/bin/sh\necho "coinharvest $*"\n')
    stub.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "COINHARVEST_DB": str(tmp_path / "x.db")}


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        ([], "coinharvest run"),
        (["coinharvest", "run"], "coinharvest run"),
        (["collect", "--json"], "coinharvest collect --json"),
        (["--help"], "coinharvest --help"),
        # A shell builtin of the same name must not win (`exec export` fails; review).
        (["export", "--format", "influx"], "coinharvest export --format influx"),
    ],
)
def test_the_entrypoint_execs_coinharvest(tmp_path: Path, args: list[str], runs: str) -> None:
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=_stub_path(tmp_path),
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == runs


def test_the_entrypoint_stops_on_a_data_directory_it_cannot_write(tmp_path: Path) -> None:
    env = {**_stub_path(tmp_path), "COINHARVEST_DB": str(tmp_path / "missing" / "x.db")}
    done = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2
    assert "is not writable" in done.stderr and not done.stdout


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Health", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_healthcheck_probes_health_and_fails_on_503(
    instructions: list[Instruction], health_server: tuple[int, type[_Health]]
) -> None:
    (check,) = _final(instructions, "HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command.strip())
    assert argv[:2] == ["python", "-c"] and "/health" in argv[2]
    port, handler = health_server
    env = {**os.environ, "HTTP_PORT": str(port)}
    probe = [sys.executable, *argv[1:]]
    assert subprocess.run(probe, env=env, capture_output=True, timeout=20).returncode == 0
    handler.status = 503
    assert subprocess.run(probe, env=env, capture_output=True, timeout=20).returncode != 0


# --------------------------------------------------------------------------- install step


def _build_context(instructions: list[Instruction], into: Path) -> None:
    """Copy what the build stage COPYs from the repository (pyproject, README, src) to `into`."""
    for args in _stage(instructions, "COPY", 0):
        *sources, _ = args.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    into / source,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
                )
            else:
                shutil.copy2(origin, into / source)


def _run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def wheel(instructions: list[Instruction], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """coinharvest's wheel, built as the image's build stage does, from a copy of its context."""
    context = tmp_path_factory.mktemp("context")
    _build_context(instructions, context)
    dist = context / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), "."],
        cwd=context,
    )
    if built.returncode != 0 and "setuptools" in built.stderr and "version" in built.stderr:
        pytest.skip(f"no index to fetch the build backend from: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (found,) = dist.glob("coinharvest-*.whl")
    return found


def test_the_wheel_installs_and_runs_from_a_clean_venv(wheel: Path, tmp_path: Path) -> None:
    """The runtime stage's install, with the dependencies taken from this interpreter."""
    venv = tmp_path / "venv"
    made = _run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)]
    )
    assert made.returncode == 0, made.stderr
    python, exe = venv / "bin" / "python", venv / "bin" / "coinharvest"
    installed = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    where = _run([str(python), "-c", "import coinharvest; print(coinharvest.__file__)"])
    assert where.stdout.startswith(str(venv)), "the wheel, not the working tree, is imported"
    env = {**os.environ, "COINHARVEST_DB": str(tmp_path / "data" / "coinharvest.db")}
    (tmp_path / "data").mkdir()
    helped = _run([str(exe), "--help"], env=env)
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stderr
    version = _run([str(exe), "version"], env=env)
    assert version.returncode == 0 and "coinharvest" in version.stdout, version.stderr
    upgraded = _run([str(exe), "db", "upgrade"], env=env)  # migrations are in the wheel
    assert upgraded.returncode == 0, upgraded.stderr + upgraded.stdout
    assert (tmp_path / "data" / "coinharvest.db").is_file()
    web = _run(
        [
            str(python),
            "-c",
            "from importlib.resources import files; "
            "print(sorted(p.name for p in (files('coinharvest') / 'service/web').iterdir()))",
        ]
    )
    assert "index.html" in web.stdout and "app.js" in web.stdout, web.stderr


def _container_engine() -> str | None:
    """``docker`` or ``podman`` if one is installed and its daemon/service answers."""
    for name in ("podman", "docker"):
        if shutil.which(name) is None:
            continue
        try:
            if _run([name, "info"]).returncode == 0:
                return name
        except subprocess.TimeoutExpired:
            continue
    return None


def test_the_image_builds_and_runs_coinharvest_version() -> None:
    engine = _container_engine()
    if engine is None:
        pytest.skip("no container engine answers here (docker/podman info fails)")
    tag = "coinharvest-test:latest"
    built = subprocess.run(
        [engine, "build", "-f", str(CONTAINERFILE), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    ran = _run([engine, "run", "--rm", tag, "version"])
    assert ran.returncode == 0 and "coinharvest" in ran.stdout, ran.stderr
    user = _run([engine, "run", "--rm", "--entrypoint", "id", tag, "-u"])
    assert user.stdout.strip() not in ("", "0")


def test_the_entrypoint_knows_every_command_of_the_cli() -> None:
    """The entry point lists coinharvest's commands (so builtins never shadow them): the
    list must follow the CLI."""
    from coinharvest.cli.main import app

    typer_click = pytest.importorskip("typer.main")
    group = typer_click.get_command(app)
    commands = set(group.commands)
    text = ENTRYPOINT.read_text()
    listed = set(text.split("coins|", 1)[1].split(")", 1)[0].replace("\\\n", "").split("|"))
    listed = {c.strip() for c in listed} | {"coins"}
    assert commands == listed
