"""Real upstream payloads (``tests/fixtures/real/``, see its README) for shape comparisons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REAL = Path(__file__).parent.parent / "fixtures" / "real"


def real_payload(name: str) -> Any:
    """The recorded or documented JSON document ``tests/fixtures/real/<name>``."""
    return json.loads((REAL / name).read_text(encoding="utf-8"))
