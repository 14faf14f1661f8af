"""The value types of settings, each carrying what a valid value looks like.

A setting's type is an ``Annotated`` pydantic type with an `Allowed` marker: the marker's text
completes the one-line error ``NAME='value' is invalid: must be <text>`` (`coinharvest.config`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

__all__ = [
    "Allowed",
    "CoingeckoPlan",
    "Count",
    "Host",
    "NonNegativeNumber",
    "Plan",
    "PluginSpecs",
    "Port",
    "PositiveNumber",
    "Token",
    "Url",
    "allowed_text_of",
]

CoingeckoPlan = Literal["public", "demo", "pro"]


@dataclass(frozen=True, slots=True)
class Allowed:
    """Marker in a field's metadata: what a valid value looks like, for error messages."""

    text: str


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Count = Annotated[int, Field(ge=1), Allowed("an integer ≥ 1")]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False), Allowed("a finite number > 0")]
NonNegativeNumber = Annotated[
    float, Field(ge=0, allow_inf_nan=False), Allowed("a finite number ≥ 0")
]
Url = Annotated[str, Field(pattern=r"^https?://\S+$"), Allowed("an http:// or https:// URL")]
Port = Annotated[int, Field(ge=0, le=65535), Allowed("an integer from 0 to 65535")]
Host = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+$"), Allowed("a host name or an IP address")
]


def _check_token(value: SecretStr) -> SecretStr:
    if not re.fullmatch(r"[!-~]{16,}", value.get_secret_value()):
        raise ValueError("weak or malformed token")
    return value


Token = Annotated[
    SecretStr,
    AfterValidator(_check_token),
    Allowed("at least 16 printable characters without spaces"),
]
_SPEC = r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"
PluginSpecs = Annotated[
    str,
    Field(pattern=rf"^\s*({_SPEC}\s*(,\s*{_SPEC}\s*)*)?$"),
    Allowed("comma-separated package.module:ClassName entries"),
]
Plan = Annotated[CoingeckoPlan, BeforeValidator(_lower), Allowed("one of 'public', 'demo', 'pro'")]


def allowed_text_of(kind: Any) -> str:
    """What a valid value of the annotated type `kind` looks like."""
    return next((a.text for a in get_args(kind) if isinstance(a, Allowed)), "a valid value")
