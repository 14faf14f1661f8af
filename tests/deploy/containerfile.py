"""A small reader of Containerfile/Dockerfile instructions (enough for deploy/Containerfile).

Lines are joined at trailing backslashes, comments and blank lines dropped; each instruction
is kept with the index of its build stage (the count of ``FROM`` lines before it, minus one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Instruction", "exec_form", "read_instructions"]


@dataclass(frozen=True)
class Instruction:
    """One instruction: its stage, keyword (upper case) and the rest of the line."""

    stage: int
    keyword: str
    args: str


def read_instructions(path: Path) -> list[Instruction]:
    """Every instruction of the file at `path`, in order."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    found: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        found.append(Instruction(stage, keyword, args.strip()))
    return found


def exec_form(args: str) -> list[str]:
    """The argument vector of a ``CMD``/``ENTRYPOINT``: JSON (exec form) or shell words."""
    if args.startswith("["):
        vector = json.loads(args)
        assert isinstance(vector, list) and all(isinstance(a, str) for a in vector)
        return vector
    return ["/bin/sh", "-c", args] if args else []
