"""Reading fields out of an upstream's JSON answer, or failing with `BadResponse`.

Every source turns a decoded JSON document into observations. When the document does not
have the shape the upstream promises, the whole job fails with one `BadResponse` that names
the source, where in the document the problem is, and what was expected::

    coingecko: /coins/markets[3].current_price: expected a number or null, got 'abc'

Nothing partial is returned for that job: sources read every field they need before they
build any observation.

An offending value is quoted cut to 40 characters (with ``...``). It is whatever the upstream
sent, possibly the API key: the engine passes every error message through `Source.redact`,
which also knows a key's start left before the ``...`` mark.

`error_message` finds the human message in an upstream's error answer.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from coinharvest.errors import BadResponse

__all__ = ["JsonReader", "error_message", "shown"]

_SHOWN = 40  # characters of an offending value quoted in an error message
_MESSAGE_KEYS = ("error_message", "message", "error", "detail")


#: A container's repr, a few levels and items deep; its strings are cut in the middle only
#: past ``2 * _SHOWN`` characters, so the elision never shows within the quoted part.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxstring = 3, 2 * _SHOWN + 3


def shown(value: Any) -> str:
    """`value` quoted in a message: its repr, cut to 40 characters with ``...``.

    Only a bounded part of the value is looked at, so a huge or deeply nested one costs
    nothing (and raises no `RecursionError`); a string loses only its end, never its middle,
    so a secret in it leaves at most its start before the ``...`` (which `redact` knows).
    """
    if isinstance(value, str):
        text = repr(value[:_SHOWN])
    elif isinstance(value, list | dict):
        text = _BRIEF.repr(value)
    else:
        text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class JsonReader:
    """Typed access to a decoded JSON document for source `source`.

    Each method takes `where`, a path such as ``/coins/markets[3].current_price``, used only
    in the error message.
    """

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> BadResponse:
        """The error for a problem at `where` (returned, for the caller to raise)."""
        return BadResponse(self.source, f"{where}: {problem}")

    def object(self, value: Any, where: str) -> dict[str, Any]:
        """`value` as a JSON object."""
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {shown(value)}")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        """`value` as a JSON array."""
        if not isinstance(value, list):
            raise self.fail(where, f"expected an array, got {shown(value)}")
        return value

    def field(self, obj: dict[str, Any], key: str, where: str) -> Any:
        """``obj[key]``; a missing key fails (a present ``null`` is returned as None)."""
        if key not in obj:
            raise self.fail(f"{where}.{key}", "missing field")
        return obj[key]

    def number(
        self, value: Any, where: str, *, nullable: bool = False, strings: bool = False
    ) -> float | None:
        """`value` as a finite float.

        :param nullable: ``null`` is allowed and returned as None.
        :param strings: numbers sent as strings (``"123.4"``) are accepted, as NearBlocks
            and Nano nodes send them.
        """
        if value is None and nullable:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        elif strings and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if math.isfinite(number):
                return number
        kind = "a number" + (" or numeric string" if strings else "")
        raise self.fail(
            where, f"expected {kind}{' or null' if nullable else ''}, got {shown(value)}"
        )

    def required_number(self, value: Any, where: str, *, strings: bool = False) -> float:
        """`value` as a finite float; ``null`` fails."""
        number = self.number(value, where, strings=strings)
        assert number is not None  # number() without nullable never returns None
        return number

    def text(self, value: Any, where: str) -> str:
        """`value` as a string."""
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {shown(value)}")
        return value


def error_message(document: Any) -> str | None:
    """The human message in the error shapes upstreams use (CoinGecko's three, Blockchair's
    ``context.error``, NearBlocks' ``message``, Nano's ``error``), with any error code."""
    if not isinstance(document, dict):
        return None
    places = [document]
    for nested in ("status", "context"):
        if isinstance(document.get(nested), dict):
            places.append(document[nested])
    text = next(
        (p[k] for p in places for k in _MESSAGE_KEYS if isinstance(p.get(k), str) and p[k]), None
    )
    code = next((p["error_code"] for p in places if isinstance(p.get("error_code"), int)), None)
    if text is None:
        return None if code is None else f"error_code {code}"
    return text if code is None or code == 429 else f"{text} (error_code {code})"
