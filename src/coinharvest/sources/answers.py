"""What an upstream's error answer says: its message, or the title of the page it sent.

Upstreams answer errors in JSON of several shapes (CoinGecko's three, Blockchair's
``context.error``, NearBlocks' ``message``, Nano's ``error``: `error_message`), in plain
text, or as an HTML page (a firewall's 403, a CDN's 503). `upstream_message` turns any of
them into one description; the HTTP client redacts and shortens it (in that order).
"""

from __future__ import annotations

import json
import re

from coinharvest.sources.fields import error_message
from coinharvest.sources.wire import Answer

__all__ = ["html_summary", "is_html", "text_of", "upstream_message"]

_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title>")


def is_html(response: Answer) -> bool:
    """An HTML page: a body that starts with a tag, or says it is HTML and has tags.

    Not every ``text/html`` answer is a page: NanoRPCProxy (Express ``res.send``) sends its
    plain-text 429 ``… Time left: 42sec`` as ``text/html``, and that text must be read.
    """
    head = response.content.lstrip()[:512]
    kind = response.headers.get("content-type", "").lower()
    return head[:1] == b"<" or ("html" in kind and b"<" in head)


def text_of(response: Answer) -> str:
    """The body as text, never raising: a wrong or unknown charset (``utf-16`` without a
    BOM, ``bogus``) falls back to UTF-8 with replacement characters."""
    try:
        return response.text
    except (UnicodeError, LookupError):
        return response.content.decode("utf-8", errors="replace")


def html_summary(response: Answer) -> str:
    title = _TITLE.search(text_of(response))
    return f'HTML page "{title.group(1).strip()}"' if title else "HTML page"


def upstream_message(response: Answer) -> str:
    """The description of an error answer, neither redacted nor shortened (`HttpClient`
    does both, in that order)."""
    if not response.content:
        return response.reason or "empty body"
    if is_html(response):
        return html_summary(response)
    try:
        message = error_message(json.loads(text_of(response)))
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
        message = None
    return message if message is not None else text_of(response)
