"""`.env.example` stays true: it loads as-is and documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from coinharvest.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def _env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) if alias is not None else None
        if isinstance(alias, str):
            names.add(alias.upper())
        elif choices:
            names.update(str(c).upper() for c in choices)
        else:
            names.add(name.upper())
    return names


def test_env_example_loads_unchanged() -> None:
    settings = load_settings(env={}, env_file=EXAMPLE)
    assert settings.max_collection_concurrency == 5


def test_env_example_documents_every_variable() -> None:
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = {n for n in _env_names() if n not in documented and n != "NANO_RPC_URL"}
    assert not missing, f".env.example does not document: {sorted(missing)}"


def test_env_example_values_are_the_defaults() -> None:
    # A value written in the example is the documented default: it must not drift from the code.
    example = load_settings(env={}, env_file=EXAMPLE).model_dump()
    defaults = load_settings(env={}, env_file=None).model_dump()
    assert {k: v for k, v in example.items() if defaults[k] != v} == {}


def test_env_example_documents_the_hardening_settings_with_their_bounds() -> None:
    text = EXAMPLE.read_text()
    for line in (
        "MAX_RETRIES=3",
        "MAX_COOLDOWN_SECONDS=300",
        "COLLECT_TIMEOUT_MINUTES=30",
        "MAX_RESPONSE_BYTES=8388608",
        "BREAKER_FAILURES=3",
        "BREAKER_COOLOFF_SECONDS=30",
    ):
        assert re.search(rf"^{line}$", text, flags=re.MULTILINE), line
    assert "MAX_RETRIES + 1 attempts" in text
    assert "0 = no retries" in text
