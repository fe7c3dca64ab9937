"""GET /v1/models, /v1/models/{id} and /v1/usage/{request_id}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ccgate.billing.prices import ModelPrice
from ccgate.billing.usage_view import cost_object
from ccgate.dialects.anthropic import AnthropicDialect
from ccgate.errors import GatewayError
from ccgate.gate.durations import describe_wait, describe_window
from ccgate.http.bodies import parse_body, read_body
from ccgate.http.endpoint import endpoint, resolve_model
from ccgate.http.services import Services, services
from ccgate.ops import OperationError
from ccgate.pipeline.context import Call
from ccgate.store.rows import UsageRow


def model_object(model: ModelPrice) -> dict[str, Any]:
    """One model in a shape both SDKs parse: Anthropic's fields and OpenAI's side by side."""
    return {
        "type": "model", "id": model.id, "display_name": model.display_name, "created_at": model.created_at,
        "max_input_tokens": model.max_input_tokens, "max_tokens": model.max_tokens,
        "object": "model", "created": int(datetime.fromisoformat(model.created_at).timestamp()),
        "owned_by": "anthropic",
    }


def json_response(call: Call, payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, headers=call.id_headers(), media_type="application/json")


def _page(models: list[ModelPrice], params: QueryParams) -> tuple[list[ModelPrice], bool]:
    """Anthropic's cursor pagination: `limit` (1-1000, default 20), `after_id`, `before_id`."""
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        raise GatewayError(400, "limit: Input should be a valid integer") from None
    if not 1 <= limit <= 1000:
        raise GatewayError(400, "limit: Input should be between 1 and 1000")
    ids = [model.id for model in models]
    if before := params.get("before_id"):
        end = ids.index(before) if before in ids else len(ids)
        start = max(0, end - limit)
        return models[start:end], start > 0
    start = ids.index(params["after_id"]) + 1 if params.get("after_id") in ids else 0
    return models[start:start + limit], start + limit < len(models)


@endpoint(AnthropicDialect)
async def list_models(request: Request, gateway: Services, call: Call) -> Response:
    key = gateway.authenticate(request.headers)
    visible = [m for m in gateway.catalog.models
               if key.models is None or m.id in key.models or key.models.intersection(m.aliases)]
    page, has_more = _page(visible, request.query_params)
    return json_response(call, {
        "data": [model_object(model) for model in page], "has_more": has_more,
        "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None, "object": "list",
    })


@endpoint(AnthropicDialect)
async def get_model(request: Request, gateway: Services, call: Call) -> Response:
    gateway.authenticate(request.headers)
    return json_response(call, model_object(resolve_model(gateway, request.path_params["model_id"])))


def usage_object(row: UsageRow) -> dict[str, Any]:
    """A usage row in the seed's shape, with Anthropic's usage field names."""
    return {
        "request_id": row.request_id, "model": row.model, "status": row.status,
        "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
        "cache_read_input_tokens": row.cache_read_tokens,
        "cache_creation_input_tokens": row.cache_write_5m_tokens + row.cache_write_1h_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": row.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": row.cache_write_1h_tokens,
        },
        "cost_micro": row.cost_micro, "cost_usd": row.cost_micro / 1_000_000, "cost": cost_object(row),
        "streamed": row.streamed, "dialect": row.dialect, "cache_hit": row.cache_hit,
        "latency_ms": row.latency_ms, "ttft_ms": row.ttft_ms,
        "created_at": datetime.fromtimestamp(row.created_ms / 1000, UTC).isoformat(),
    }


@endpoint(AnthropicDialect)
async def get_usage(request: Request, gateway: Services, call: Call) -> Response:
    """A request's usage, for its own user's keys only; anyone else learns nothing (404)."""
    key = gateway.authenticate(request.headers)
    row = await gateway.usage_row(request.path_params["request_id"])
    if row is None or row.user_id != key.user_id:
        raise GatewayError(404, f"no request {request.path_params['request_id']} for this key")
    return json_response(call, usage_object(row))


@endpoint(AnthropicDialect)
async def key_status(request: Request, gateway: Services, call: Call) -> Response:
    """The seed's key-status: the key's budget, limits and standing, and its user's credit."""
    key = gateway.authenticate(request.headers)
    rpm, concurrency, budget, window = gateway.gate.limits_of(key)
    standing = await gateway.state.standing(key.id, key.user_id, window)
    payload = {
        "key": key.display, "id": key.id, "name": key.name, "status": "active",
        "budget": {
            "total_tokens": budget, "used_tokens": standing.tokens_used,
            "remaining_tokens": max(budget - standing.tokens_used, 0), "window": describe_window(window),
            "resets_in": describe_wait(standing.tokens_reset_in) if standing.tokens_reset_in else None,
        } if budget else None,
        "rate_limit": {
            "rpm": rpm or None, "concurrent": concurrency or None,
            "requests_last_minute": standing.requests_last_minute, "in_flight": standing.in_flight,
        },
        "models": sorted(key.models) if key.models else None,
        "expires_at": (datetime.fromtimestamp(key.expires_ms / 1000, UTC).isoformat()
                       if key.expires_ms else None),
        "credit": credit_object(key.prepaid, standing.balance_micro, standing.held_micro,
                                gateway.gate.overdraft_of(key)),
    }
    return json_response(call, payload)


def credit_object(prepaid: bool, balance_micro: int | None, held_micro: int, overdraft_micro: int) -> dict[str, Any]:
    """The user's credit: the balance (below zero down to -overdraft while requests run), what requests in
    flight hold, and what a new request may still spend: balance + overdraft - held."""
    if not prepaid:
        return {"prepaid": False}
    balance = balance_micro or 0
    available = max(balance + overdraft_micro - held_micro, 0)
    return {"prepaid": True, "balance_micro": balance, "balance_usd": balance / 1_000_000,
            "overdraft_micro": overdraft_micro, "overdraft_usd": overdraft_micro / 1_000_000,
            "held_micro": held_micro, "held_usd": held_micro / 1_000_000,
            "available_micro": available, "available_usd": available / 1_000_000}


@endpoint(AnthropicDialect)
async def redeem_code(request: Request, gateway: Services, call: Call) -> Response:
    """POST /v1/credit/redeem {"code": "CC-..."}: a user tops up their own credit."""
    key = gateway.authenticate(request.headers)
    code = parse_body(await read_body(request, gateway.settings.max_body_bytes)).get("code")
    if not isinstance(code, str) or not code.strip():
        raise GatewayError(400, "code: Field required")
    try:
        balance = await gateway.ops.redeem_code(key.user_id, code)
    except OperationError as error:
        raise GatewayError(400, str(error)) from None
    return json_response(call, {"redeemed": True, "balance_micro": balance,
                                "balance_usd": balance / 1_000_000 if balance is not None else None})


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the database answers (without it requests are refused); Redis may be degraded."""
    gateway = services(request)
    ready = gateway.pipeline.database_up()
    return JSONResponse({"ready": ready, "database": "ok" if ready else "unreachable", "redis": gateway.redis_status()},
                        status_code=200 if ready else 503)
