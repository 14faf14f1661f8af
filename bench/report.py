"""Result rows, the table they print as, the JSON and Markdown files, and the machine."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Row", "machine", "markdown_table", "write_results"]


@dataclass(slots=True)
class Row:
    """One measured run: which workload and case, which implementation, and its figures.

    ``ratio`` is ``duration_s / bound_s``. ``cooldown_requests`` counts requests sent to a
    source while a Retry-After it had received was still running (W4). ``extra`` holds
    workload-specific figures (per-source completion times, CPU, RSS, ...).
    """

    workload: str
    case: str
    impl: str
    duration_s: float
    bound_s: float
    requests: int
    rate_limited: int
    violations: int
    cooldown_requests: int | None = None
    projected: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Duration over the lower bound (inf when the bound is 0)."""
        return self.duration_s / self.bound_s if self.bound_s > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the ratio included."""
        return {**asdict(self), "ratio": round(self.ratio, 4)}


_HEAD = (
    "| Workload | Case | Impl | Time (s) | Bound (s) | × bound | Requests | 429s "
    "| Violations | Cooldown reqs |"
)


def _cell(row: Row) -> str:
    time_s = f"{row.duration_s:.3f}" + (" (proj.)" if row.projected else "")
    cooldown = "—" if row.cooldown_requests is None else str(row.cooldown_requests)
    return (
        f"| {row.workload} | {row.case} | {row.impl} | {time_s} | {row.bound_s:.3f} "
        f"| {row.ratio:.2f} | {row.requests:,} | {row.rate_limited} | {row.violations} "
        f"| {cooldown} |"
    )


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as one Markdown table (also readable as plain text)."""
    sep = "|" + "---|" * (_HEAD.count("|") - 1)
    return "\n".join([_HEAD, sep, *(_cell(r) for r in rows)])


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python version and OS of this machine."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def write_results(
    out: Path, name: str, rows: Sequence[Row], meta: dict[str, Any], notes: Sequence[str] = ()
) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md`` under `out`; return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {"written": stamp, "machine": machine(), **meta, "rows": [r.as_dict() for r in rows]}
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md = [f"# bench {name} ({stamp})", "", markdown_table(rows), ""]
    md += [f"- {note}" for note in notes]
    md_path = out / f"{name}.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return json_path, md_path
