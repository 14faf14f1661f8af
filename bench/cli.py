"""``python -m bench <workload|all> [--scale F] [--out DIR] [--baseline-cap S]``.

Runs each named workload, prints its table, and writes ``<workload>.json`` and
``<workload>.md`` into `--out` (default ``bench/results``); ``all`` also writes
``all.json`` / ``all.md`` with every row.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

from bench.context import Context, Outcome
from bench.report import Row, machine, markdown_table, write_results
from bench.workloads import WORKLOADS

__all__ = ["main", "run_workloads"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("workload", choices=[*WORKLOADS, "all"], help="which workload to run")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies every workload's time scale"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="results dir")
    parser.add_argument(
        "--baseline-cap",
        type=float,
        default=10.0,
        help="seconds a baseline case may run before it is projected (default 10)",
    )
    return parser


async def run_workloads(names: Sequence[str], ctx: Context) -> list[tuple[str, Outcome]]:
    """Run `names` in order, printing and writing each one's results."""
    done: list[tuple[str, Outcome]] = []
    for name in names:
        title, runner = WORKLOADS[name]
        print(f"\n== {title} ==", flush=True)
        started = time.perf_counter()
        outcome = await runner(ctx)
        elapsed = time.perf_counter() - started
        print(markdown_table(outcome.rows))
        for note in outcome.notes:
            print(f"  - {note}")
        print(f"  ({name} took {elapsed:.1f} s wall)", flush=True)
        outcome.meta["wall_s"] = round(elapsed, 2)
        write_results(
            ctx.out, name, outcome.rows, {"workload": name, **outcome.meta}, outcome.notes
        )
        done.append((name, outcome))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.scale <= 0:
        raise SystemExit("--scale must be > 0")
    ctx = Context(scale=args.scale, out=args.out, baseline_cap_s=args.baseline_cap)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    info = machine()
    print(f"machine: nproc={info['nproc']} cpu={info['cpu']} python={info['python']}")
    done = asyncio.run(run_workloads(names, ctx))
    if len(done) > 1:
        rows: list[Row] = [row for _, outcome in done for row in outcome.rows]
        notes = [note for _, outcome in done for note in outcome.notes]
        meta = {"workloads": {name: outcome.meta for name, outcome in done}, "scale": args.scale}
        write_results(ctx.out, "all", rows, meta, notes)
    return 0
