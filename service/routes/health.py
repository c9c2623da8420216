"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from gpnn.service import metrics
from gpnn.service.deps import LedgerDep, OwnerDep
from gpnn.service.schemas import Health, WebhookSecret
from gpnn.worker.webhooks import signing_secret

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis or the store is unreachable."}},
    summary="Redis and the store are reachable",
)
def readyz(ledger: LedgerDep) -> Response:
    checks = {}
    try:
        ledger.redis.ping()
        checks["redis"] = "ok"
    except Exception as error:
        checks["redis"] = f"unreachable: {type(error).__name__}"
    try:
        ledger.store.ping()
        checks["store"] = "ok"
    except Exception as error:
        checks["store"] = f"unreachable: {type(error).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    summary="Prometheus metrics",
)
def prometheus(ledger: LedgerDep) -> Response:
    return Response(metrics.render(ledger), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/webhooks/secret",
    response_model=WebhookSecret,
    tags=["webhooks"],
    summary="The key that signs this owner's webhook deliveries (Standard Webhooks)",
)
def webhook_secret(ledger: LedgerDep, owner: OwnerDep) -> WebhookSecret:
    return WebhookSecret(secret=signing_secret(ledger.redis, ledger.settings, owner))
