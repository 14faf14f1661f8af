"""The value types of settings, each carrying what a valid value looks like.

A setting's type is an ``Annotated`` pydantic type with an `Allowed` marker: the marker's text
completes the one-line error ``NAME='value' is invalid: must be <text>`` (`describe_errors`,
called by `coinharvest.config`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic.fields import FieldInfo

__all__ = [
    "Allowed",
    "ApiKey",
    "BatchSize",
    "BreakerFailures",
    "CheckSeconds",
    "CoingeckoPlan",
    "CooldownSeconds",
    "CooloffSeconds",
    "Count",
    "DelayMs",
    "GlobalConcurrency",
    "GraceSeconds",
    "Host",
    "HostList",
    "IntervalMinutes",
    "JitterSeconds",
    "LogFormatName",
    "LogLevelName",
    "MinIntervalMs",
    "NonNegativeNumber",
    "Plan",
    "PluginSpecs",
    "Port",
    "PositiveNumber",
    "QuotaCount",
    "RatePerMinute",
    "ResponseBytes",
    "RetentionDays",
    "Retries",
    "RunMinutes",
    "SourceConcurrency",
    "Switch",
    "TimeoutSeconds",
    "Token",
    "Url",
    "allowed_text_of",
    "describe_errors",
]

CoingeckoPlan = Literal["public", "demo", "pro"]


@dataclass(frozen=True, slots=True)
class Allowed:
    """Marker in a field's metadata: what a valid value looks like, for error messages."""

    text: str


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Unbounded: for values that are not settings (a setting always has an upper bound, below).
Count = Annotated[int, Field(ge=1), Allowed("an integer ≥ 1")]
PositiveNumber = Annotated[float, Field(gt=0, allow_inf_nan=False), Allowed("a finite number > 0")]
NonNegativeNumber = Annotated[
    float, Field(ge=0, allow_inf_nan=False), Allowed("a finite number ≥ 0")
]

# Every numeric setting has an upper bound: a typo or ``1e308`` must not mean "wait forever".
# ``inf`` and ``nan`` fail the bound (and allow_inf_nan) like any other bad value.
GlobalConcurrency = Annotated[int, Field(ge=1, le=1000), Allowed("an integer from 1 to 1000")]
SourceConcurrency = Annotated[int, Field(ge=1, le=100), Allowed("an integer from 1 to 100")]
RatePerMinute = Annotated[int, Field(ge=1, le=100_000), Allowed("an integer from 1 to 100000")]
BatchSize = Annotated[int, Field(ge=1, le=10_000), Allowed("an integer from 1 to 10000")]
#: Requests per UTC day or month; 0 turns the quota off.
QuotaCount = Annotated[
    int, Field(ge=0, le=1_000_000_000), Allowed("an integer from 0 (no quota) to 1000000000")
]
#: Days of data kept; 0 keeps everything.
RetentionDays = Annotated[
    int, Field(ge=0, le=36_500), Allowed("an integer from 0 (keep forever) to 36500 days")
]
Retries = Annotated[int, Field(ge=0, le=20), Allowed("an integer from 0 to 20")]
BreakerFailures = Annotated[int, Field(ge=1, le=100), Allowed("an integer from 1 to 100")]
ResponseBytes = Annotated[
    int, Field(ge=1024, le=1 << 30), Allowed("an integer from 1024 to 1073741824 (1 GiB)")
]
IntervalMinutes = Annotated[
    float,
    Field(ge=0.01, le=10_080, allow_inf_nan=False),
    Allowed("a number from 0.01 to 10080 (0.6 s to 7 days)"),
]
RunMinutes = Annotated[
    float, Field(gt=0, le=1440, allow_inf_nan=False), Allowed("a number > 0 and ≤ 1440 (1 day)")
]
TimeoutSeconds = Annotated[
    float, Field(gt=0, le=600, allow_inf_nan=False), Allowed("a number > 0 and ≤ 600")
]
CooldownSeconds = Annotated[
    float, Field(gt=0, le=86_400, allow_inf_nan=False), Allowed("a number > 0 and ≤ 86400 (1 day)")
]
CooloffSeconds = Annotated[
    float, Field(gt=0, le=3600, allow_inf_nan=False), Allowed("a number > 0 and ≤ 3600")
]
JitterSeconds = Annotated[
    float, Field(ge=0, le=3600, allow_inf_nan=False), Allowed("a number from 0 to 3600")
]
CheckSeconds = Annotated[
    float, Field(ge=0.05, le=60, allow_inf_nan=False), Allowed("a number from 0.05 to 60")
]
GraceSeconds = Annotated[
    float, Field(ge=0, le=3600, allow_inf_nan=False), Allowed("a number from 0 to 3600")
]
DelayMs = Annotated[
    float, Field(ge=0, le=600_000, allow_inf_nan=False), Allowed("a number from 0 to 600000")
]
MinIntervalMs = Annotated[
    float, Field(ge=0, le=3_600_000, allow_inf_nan=False), Allowed("a number from 0 to 3600000")
]
Url = Annotated[str, Field(pattern=r"^https?://\S+$"), Allowed("an http:// or https:// URL")]
Port = Annotated[int, Field(ge=0, le=65535), Allowed("an integer from 0 to 65535")]
Host = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+$"), Allowed("a host name or an IP address")
]


#: Extra ``Host`` names the HTTP API answers (besides the bind address and localhost).
HostList = Annotated[
    str,
    Field(pattern=r"^\s*([A-Za-z0-9*.:\[\]-]+\s*(,\s*[A-Za-z0-9*.:\[\]-]+\s*)*)?$"),
    Allowed("comma-separated host names, e.g. 'coinharvest,*.example.com'"),
]


def _check_key(value: SecretStr) -> SecretStr:
    # A key read from a file often ends in a newline: sent as a header it breaks the
    # request, and the HTTP library's error would quote it (escaped, past any redaction).
    if not re.fullmatch(r"[!-~]+", value.get_secret_value()):
        raise ValueError("an API key with spaces or control characters")
    return value


#: An upstream API key: printable characters only (the message never shows the key).
ApiKey = Annotated[
    SecretStr,
    AfterValidator(_check_key),
    Allowed("printable characters without spaces or line breaks (check for a trailing newline)"),
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
#: A switch: on/off, true/false, yes/no, 1/0 (any case).
Switch = Annotated[bool, Allowed("on or off (also true/false, yes/no, 1/0)")]
Plan = Annotated[CoingeckoPlan, BeforeValidator(_lower), Allowed("one of 'public', 'demo', 'pro'")]
LogFormatName = Annotated[
    Literal["text", "json"], BeforeValidator(_lower), Allowed("one of 'text', 'json'")
]
LogLevelName = Annotated[
    Literal["debug", "info", "warning", "error"],
    BeforeValidator(_lower),
    Allowed("one of 'debug', 'info', 'warning', 'error'"),
]


def allowed_text_of(kind: Any) -> str:
    """What a valid value of the annotated type `kind` looks like."""
    return next((a.text for a in get_args(kind) if isinstance(a, Allowed)), "a valid value")


def describe_errors(exc: ValidationError, fields: Mapping[str, FieldInfo]) -> str:
    """All errors of `exc` on one line, each as ``NAME='value' is invalid: must be ...``.

    :param fields: the settings' fields (``Settings.model_fields``), for names and rules.
    """
    return "; ".join(_describe_one(error, fields) for error in exc.errors())


def _describe_one(error: Mapping[str, Any], fields: Mapping[str, FieldInfo]) -> str:
    loc = str(error["loc"][0]) if error["loc"] else ""
    info = _field_for(loc, fields)
    allowed = _allowed_text(info) if info is not None else None
    reason = f"must be {allowed}" if allowed else str(error["msg"]).splitlines()[0]
    shown = "'***'" if info is not None and _is_secret(info) else repr(error["input"])
    return f"{_env_name(loc, info)}={shown} is invalid: {reason}"


def _is_secret(info: FieldInfo) -> bool:
    """Whether the field holds a secret, whose value an error message must not show."""
    return "SecretStr" in repr(info.annotation)


def _env_name(loc: str, info: FieldInfo | None) -> str:
    """The variable name(s) a user sets for field `loc`: ``NANO_BASE_URL/NANO_RPC_URL``."""
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices):
        return "/".join(str(choice).upper() for choice in alias.choices)
    return loc.upper()


def _field_for(loc: str, fields: Mapping[str, FieldInfo]) -> FieldInfo | None:
    """The field that `loc` (a field name or one of its aliases) refers to."""
    if loc in fields:
        return fields[loc]
    for info in fields.values():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and loc in alias.choices:
            return info
    return None


def _allowed_text(info: FieldInfo) -> str | None:
    """The `Allowed` text in a field's metadata or annotation (``X | None`` included)."""
    pending: list[Any] = [*info.metadata, info.annotation]
    while pending:
        item = pending.pop(0)
        if isinstance(item, Allowed):
            return item.text
        pending.extend(get_args(item))
    return None
