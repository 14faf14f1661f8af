"""The API's limit routes, over a `LimitsDesk` (service/limits.py)::

    GET    /api/limits            each source's in-flight limit and rate (in force and
                                  ceilings), the rate the upstream refused, quota use
    DELETE /api/limits            forget every learned limit  } bearer token; only where the
    DELETE /api/limits/{source}   forget one source's         } desk can reset (`run`)

A reset deletes the learned limits from the database and, in ``coinharvest run``, starts the
service's engine afresh from the configured limits; while a run is going it is refused with
a 409 (that run would save what it learned at its end, undoing the reset).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from coinharvest.engine.adaptive import LimitView
from coinharvest.service.auth import bearer_refusal, json_error
from coinharvest.service.limits import LimitsDesk, ResetRefused
from coinharvest.service.schemas import (
    BearerToken,
    ErrorOut,
    LimitsOut,
    LimitsResetOut,
    SourceLimitOut,
    SourceName,
)

__all__ = ["add_limit_routes", "limit_out"]


def limit_out(view: LimitView) -> SourceLimitOut:
    """A view as JSON: ``null`` for an infinite rate (no rate limit)."""
    return SourceLimitOut(
        source=view.source,
        adaptive=view.adaptive,
        concurrency=view.concurrency,
        max_concurrency=view.max_concurrency,
        rate_per_minute=_finite(view.rate_per_minute),
        max_rate_per_minute=_finite(view.max_rate_per_minute),
        ceiling_per_minute=_finite(view.ceiling_per_minute),
        quota_used_day=view.quota_used_day,
        quota_used_month=view.quota_used_month,
        quota_today=view.quota_today,
        quota_per_month=view.quota_per_month,
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def add_limit_routes(app: FastAPI, desk: LimitsDesk | None, token: str | None) -> None:
    """``GET /api/limits`` (empty without a desk), and the resets when `token` is set and the
    desk can reset."""

    @app.get("/api/limits", response_model=LimitsOut)
    async def limits() -> LimitsOut:
        """Each source's limits: in force (learned) and configured, and its quota use."""
        if desk is None:
            return LimitsOut(live=False, sources=[])
        views = await desk.views()
        return LimitsOut(live=desk.engine is not None, sources=[limit_out(v) for v in views])

    if desk is not None and desk.resetter is not None and token:
        _add_reset_routes(app, desk, token.encode())


def _add_reset_routes(app: FastAPI, desk: LimitsDesk, expected: bytes) -> None:
    answers: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}, 409: {"model": ErrorOut}}

    @app.delete("/api/limits", response_model=LimitsResetOut, responses=answers)
    async def reset_all(credentials: BearerToken) -> Response:
        """Forget every source's learned limits. Needs the bearer token."""
        return bearer_refusal(credentials, expected) or await _reset(desk, None)

    @app.delete(
        "/api/limits/{source}",
        response_model=LimitsResetOut,
        responses={**answers, 404: {"model": ErrorOut}},
    )
    async def reset_source(source: SourceName, credentials: BearerToken) -> Response:
        """Forget one source's learned limits (under every API key). Needs the bearer token."""
        return bearer_refusal(credentials, expected) or await _reset(desk, source)


async def _reset(desk: LimitsDesk, source: str | None) -> Response:
    try:
        outcome = await desk.reset(source)
    except KeyError:
        known = ", ".join(desk.sources)
        return json_error(404, f"unknown source: {source} (known: {known})")
    except ResetRefused as exc:
        return json_error(409, str(exc))
    body = LimitsResetOut(
        source=outcome.source,
        forgotten=outcome.forgotten,
        engine_reset=outcome.engine_reset,
        message=outcome.message,
    )
    return JSONResponse(body.model_dump())
