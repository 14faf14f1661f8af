"""deploy/coinharvest.service: the sandbox and stop settings, and ``systemd-analyze verify``
where systemd-analyze is installed (skipped elsewhere)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from coinharvest.config import Settings
from coinharvest.service.app import HTTP_GRACE_S

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "coinharvest.service"
Unit = dict[str, dict[str, list[str]]]


def read_unit(text: str) -> Unit:
    """Sections → key → every value given (systemd allows a key several times)."""
    unit: Unit = {}
    section: dict[str, list[str]] = defaultdict(list)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=value: {raw!r}"
        section[key.strip()].append(value.strip())
    return unit


def seconds(value: str) -> float:
    """A systemd time span (``45``, ``45s``, ``1min 30s``) in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts, value
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return read_unit(UNIT.read_text())["Service"]


def test_the_sandbox_settings(service: dict[str, list[str]]) -> None:
    expected = {
        "DynamicUser": "yes",
        "StateDirectory": "coinharvest",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }
    for key, value in expected.items():
        assert service[key] == [value], key


def test_the_database_lives_in_the_state_directory_and_the_env_file_is_optional(
    service: dict[str, list[str]],
) -> None:
    assert "COINHARVEST_DB=%S/coinharvest/coinharvest.db" in service["Environment"]
    assert service["EnvironmentFile"] == ["-/etc/coinharvest/env"]
    (start,) = service["ExecStart"]
    assert start.endswith("coinharvest run")


def test_systemd_waits_longer_than_the_shutdown_grace(service: dict[str, list[str]]) -> None:
    grace = Settings.model_fields["shutdown_grace_seconds"].default
    assert isinstance(grace, float)
    (timeout,) = service["TimeoutStopSec"]
    assert seconds(timeout) > grace + HTTP_GRACE_S + 5, "time to store, close and exit too"


def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    true = shutil.which("true")
    assert true is not None
    # verify checks that ExecStart's binary exists: point it at one that does.
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={true}", UNIT.read_text())
    copy = tmp_path / "coinharvest.service"
    copy.write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in (done.stdout + done.stderr).splitlines() if str(copy) in line]
    assert not ours, "\n".join(ours)
    assert done.returncode == 0, done.stderr
