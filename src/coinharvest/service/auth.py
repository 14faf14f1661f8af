"""What the API's routes share: its JSON error body, and the bearer-token check of the routes
that act (``POST /api/runs``, ``DELETE /api/limits``).

The token is ``COINHARVEST_API_TOKEN``, sent as ``Authorization: Bearer <token>`` and
compared in constant time; a missing or wrong one is a 401 with ``WWW-Authenticate``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

__all__ = ["bearer_refusal", "json_error"]


def json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    """``{"error": message, "status": status, ...extra}`` with that status."""
    return JSONResponse({"error": message, "status": status, **extra}, status_code=status)


def bearer_refusal(
    credentials: HTTPAuthorizationCredentials | None, expected: bytes
) -> JSONResponse | None:
    """None when `credentials` carry the `expected` token, else the 401 to answer."""
    presented = credentials.credentials.strip() if credentials is not None else ""
    if credentials is not None and secrets.compare_digest(presented.encode(), expected):
        return None
    response = json_error(401, "missing or wrong bearer token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="coinharvest"'
    return response
