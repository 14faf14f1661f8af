"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp dir.

`PgServer.start()` finds the PostgreSQL binaries (``$PG_BINDIR``, ``pg_config --bindir``,
``/usr/lib/postgresql/<newest>/bin``, then ``$PATH``), initialises a cluster in a new
temporary directory, and starts it on a free loopback port with a private socket dir.
PostgreSQL refuses to run as root, so under root every command runs as the ``postgres``
user (else ``nobody``) through ``runuser`` (or ``setpriv``). `stop()` shuts it down and
deletes the directory. Nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgServer", "PgUnavailable", "find_bindir"]

SUPERUSER = "coinharvest"


class PgUnavailable(RuntimeError):
    """No PostgreSQL binaries here (the reason says where we looked)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[str] = []
    if env := os.environ.get("PG_BINDIR"):
        candidates.append(env)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for c in candidates:
        if c and all((Path(c) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(c)
    raise PgUnavailable(
        "PostgreSQL binaries (initdb, pg_ctl, postgres) not found in $PG_BINDIR, pg_config "
        "--bindir, /usr/lib/postgresql/*/bin or $PATH; install them with "
        "`apt-get install -y postgresql` to run the PostgreSQL tests"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """Command prefix that drops root (PostgreSQL will not run as root); [] otherwise."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if runuser := shutil.which("runuser"):
            return [runuser, "-u", user, "--"]
        if setpriv := shutil.which("setpriv"):
            return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups"]
    raise PgUnavailable("running as root, and neither runuser nor setpriv can drop privileges")


@dataclass
class PgServer:
    """One running throwaway server (see the module docstring)."""

    fsync: bool = False
    bindir: Path = field(default_factory=find_bindir)
    port: int = 0
    root: Path | None = None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this server."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgServer:
        """initdb + pg_ctl start; raises RuntimeError with the server log on failure."""
        prefix = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="coinharvest-pg-"))
        data, sock, log = self.root / "data", self.root / "sock", self.root / "log"
        sock.mkdir()
        if prefix:
            user = prefix[2] if prefix[1] == "-u" else prefix[1].split("=", 1)[1]
            entry = pwd.getpwnam(user)
            for p in (self.root, sock):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        self._run(
            prefix,
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.port = _free_port()
        options = (
            f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=50"
        )
        self._run(
            prefix,
            "pg_ctl",
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        """Stop the server (immediate) and delete its directory."""
        if self.root is None:
            return
        with contextlib.suppress(RuntimeError):
            self._run(
                _run_as(), "pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _run(self, prefix: list[str], binary: str, *args: str) -> None:
        cmd = [*prefix, str(self.bindir / binary), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/")
        if proc.returncode != 0:
            log = ""
            if self.root is not None and (self.root / "log").exists():
                log = (self.root / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{binary} failed ({proc.returncode}): {proc.stderr}\n{log}")
