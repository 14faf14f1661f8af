"""The control plane under ``/__emulator__``.

- ``GET /__emulator__/stats``: the counters (:meth:`coinharvest.emulator.stats.Stats.snapshot`),
  with each upstream's service capacity now.
- ``GET /__emulator__/trace``: the served requests' time series
  (:mod:`coinharvest.emulator.trace`); ``?upstream=3xpl`` keeps one upstream,
  ``?since_s=12.5`` the requests that arrived then or later. 400 on a bad parameter.
- ``POST /__emulator__/reset``: clear counters and limiter state (configuration is kept).
- ``GET /__emulator__/config``: the current configuration.
- ``POST /__emulator__/config``: a JSON document in the config-file schema, deep-merged
  into the current configuration (``?replace=true`` replaces it instead). Answers the
  resulting configuration, or 400 ``{"error": …, "details": […]}`` and changes nothing.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from coinharvest.emulator.config import UPSTREAMS, EmulatorConfig, merge_config
from coinharvest.emulator.http import Receive, Response, Scope, json_response, read_body

if TYPE_CHECKING:
    from coinharvest.emulator.app import EmulatorApp

__all__ = ["handle"]


async def handle(app: EmulatorApp, scope: Scope, path: str, receive: Receive) -> Response:
    """Answer one control-plane request for ``path`` (relative to ``/__emulator__/``)."""
    method, path = scope["method"], path.strip("/")
    if (method, path) == ("GET", "stats"):
        return json_response(200, app.snapshot())
    if (method, path) == ("GET", "trace"):
        return _trace(app, scope.get("query_string", b""))
    if (method, path) == ("POST", "reset"):
        app.reset()
        return json_response(200, {"ok": True})
    if (method, path) == ("GET", "config"):
        return json_response(200, app.config.model_dump(mode="json"))
    if (method, path) == ("POST", "config"):
        replace = b"replace=true" in scope.get("query_string", b"")
        return _configure(app, await read_body(receive), replace)
    return json_response(404, {"error": f"no control endpoint {method} /__emulator__/{path}"})


def _trace(app: EmulatorApp, query_string: bytes) -> Response:
    query = dict(parse_qsl(query_string.decode("latin-1")))
    unknown = sorted(set(query) - {"upstream", "since_s"})
    if unknown:
        return json_response(400, {"error": f"unknown trace parameters: {', '.join(unknown)}"})
    upstream = query.get("upstream")
    if upstream is not None and upstream not in UPSTREAMS:
        return json_response(400, {"error": f"unknown upstream {upstream!r}"})
    try:
        since_s = float(query["since_s"]) if "since_s" in query else None
    except ValueError:
        since_s = math.nan
    if since_s is not None and not math.isfinite(since_s):
        return json_response(400, {"error": "since_s must be a number of seconds"})
    return json_response(200, app.trace(upstream, since_s))


def _configure(app: EmulatorApp, body: bytes, replace: bool) -> Response:
    try:
        document: Any = json.loads(body or b"{}")
    except ValueError as exc:
        return json_response(400, {"error": f"invalid JSON: {exc}"})
    if not isinstance(document, dict):
        return json_response(400, {"error": "the configuration must be a JSON object"})
    try:
        base = EmulatorConfig() if replace else app.config
        config = merge_config(base, document)
    except ValidationError as exc:
        details = json.loads(exc.json(include_url=False))
        return json_response(400, {"error": "invalid configuration", "details": details})
    app.configure(config)
    return json_response(200, config.model_dump(mode="json"))
