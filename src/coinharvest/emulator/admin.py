"""The control plane under ``/__emulator__``.

- ``GET /__emulator__/stats``: the counters (:meth:`coinharvest.emulator.stats.Stats.snapshot`).
- ``POST /__emulator__/reset``: clear counters and limiter state (configuration is kept).
- ``GET /__emulator__/config``: the current configuration.
- ``POST /__emulator__/config``: a JSON document in the config-file schema, deep-merged
  into the current configuration (``?replace=true`` replaces it instead). Answers the
  resulting configuration, or 400 ``{"error": …, "details": […]}`` and changes nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coinharvest.emulator.config import EmulatorConfig, merge_config
from coinharvest.emulator.http import Receive, Response, Scope, json_response, read_body

if TYPE_CHECKING:
    from coinharvest.emulator.app import EmulatorApp

__all__ = ["handle"]


async def handle(app: EmulatorApp, scope: Scope, path: str, receive: Receive) -> Response:
    """Answer one control-plane request for ``path`` (relative to ``/__emulator__/``)."""
    method, path = scope["method"], path.strip("/")
    if (method, path) == ("GET", "stats"):
        return json_response(200, app.stats.snapshot())
    if (method, path) == ("POST", "reset"):
        app.reset()
        return json_response(200, {"ok": True})
    if (method, path) == ("GET", "config"):
        return json_response(200, app.config.model_dump(mode="json"))
    if (method, path) == ("POST", "config"):
        replace = b"replace=true" in scope.get("query_string", b"")
        return _configure(app, await read_body(receive), replace)
    return json_response(404, {"error": f"no control endpoint {method} /__emulator__/{path}"})


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
