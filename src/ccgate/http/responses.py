"""The OpenAI Responses dialect: /v1/responses, translated onto the same pipeline as /v1/messages, and
the stored responses that previous_response_id continues."""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from ccgate.dialects.responses import ResponsesDialect
from ccgate.dialects.responses_request import input_items, to_anthropic_request
from ccgate.dialects.responses_response import in_progress, response_frame
from ccgate.errors import invalid
from ccgate.http.bodies import parse_body, read_body
from ccgate.http.endpoint import endpoint, resolve_model
from ccgate.http.services import Services
from ccgate.pipeline.context import Call
from ccgate.route.sessions import claude_code_session, session_key

Json = dict[str, Any]


def _dialect(call: Call) -> ResponsesDialect:
    assert isinstance(call.dialect, ResponsesDialect)
    return call.dialect


async def _history(gateway: Services, user_id: int, data: Json) -> list[Json]:
    """The Anthropic turns of the conversation previous_response_id continues."""
    previous = data.get("previous_response_id")
    if previous is None:
        return []
    if not isinstance(previous, str):
        raise invalid("previous_response_id: expected a string")
    stored = await gateway.responses.get(previous, user_id, wait=True)
    if stored.turns is None:
        raise invalid(f"previous_response_id: response '{previous}' has no finished answer to continue from")
    return stored.turns


def _numbered_items(data: Json, response_id: str) -> list[Json]:
    """The request's input items, each with an id as input_items lists them."""
    suffix = response_id.removeprefix("resp_")
    return [item if isinstance(item, dict) and item.get("id") else
            {**(item if isinstance(item, dict) else {}), "id": f"item_{suffix}_{i}"}
            for i, item in enumerate(input_items(data))]


@endpoint(ResponsesDialect, recorded=True, route="responses")
async def create_response(request: Request, gateway: Services, call: Call) -> ASGIApp:
    headers = request.headers
    key = call.key = gateway.authenticate(headers)
    data = parse_body(await read_body(request, gateway.settings.max_body_bytes))
    if not isinstance(data.get("model"), str):
        raise invalid("model: Field required" if "model" not in data else "model: Input should be a valid string")
    model = call.model = resolve_model(gateway, data["model"])
    history = await _history(gateway, key.user_id, data)
    translated = to_anthropic_request(data, default_max_tokens=model.max_tokens, history=history)
    response_id = "resp_" + call.request_id.removeprefix("req_")
    frame = response_frame(data, response_id=response_id, created_at=int(time.time()))
    dialect = _dialect(call)
    dialect.begin(frame)
    if frame["store"]:
        await gateway.responses.begin(dialect, user_id=key.user_id, key_id=key.id,
                                      input_items=_numbered_items(data, response_id),
                                      response=in_progress(frame, frame["model"]), turns=translated["messages"])
    call.stream = bool(translated.get("stream"))
    call.max_tokens = translated["max_tokens"]
    upstream_body = orjson.dumps(translated)
    call.body_size = len(upstream_body)
    call.session_id = claude_code_session(headers)
    call.session = session_key(key.id, translated, call.session_id)
    gateway.cache.ask(call, translated, headers)
    response = await gateway.pipeline.run(call, "/v1/messages", upstream_body, headers.raw)
    if not call.stream:  # stored before the client can ask for it
        await gateway.responses.written(response_id)
    return response


def _json(call: Call, payload: Json) -> Response:
    return Response(orjson.dumps(payload), 200, headers=call.id_headers(), media_type="application/json")


@endpoint(ResponsesDialect)
async def get_response(request: Request, gateway: Services, call: Call) -> ASGIApp:
    key = gateway.authenticate(request.headers)
    if request.query_params.get("stream", "false").lower() != "false":
        raise invalid("stream: replaying a stored response as a stream is not supported")
    stored = await gateway.responses.get(request.path_params["response_id"], key.user_id, wait=True)
    assert stored.response is not None
    return _json(call, stored.response)


@endpoint(ResponsesDialect)
async def delete_response(request: Request, gateway: Services, call: Call) -> ASGIApp:
    key = gateway.authenticate(request.headers)
    response_id = request.path_params["response_id"]
    await gateway.responses.delete(response_id, key.user_id)
    return _json(call, {"id": response_id, "object": "response", "deleted": True})


def _page(items: list[Json], params: QueryParams) -> Json:
    """One page of input items: `order` (desc by default), `after` an item id, `limit` 1..100 (20)."""
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order: expected 'asc' or 'desc'")
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        raise invalid("limit: expected an integer") from None
    if not 1 <= limit <= 100:
        raise invalid("limit: expected an integer from 1 to 100")
    ordered = items if order == "asc" else items[::-1]
    if (after := params.get("after")) is not None:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}


@endpoint(ResponsesDialect)
async def list_input_items(request: Request, gateway: Services, call: Call) -> ASGIApp:
    key = gateway.authenticate(request.headers)
    stored = await gateway.responses.get(request.path_params["response_id"], key.user_id)
    return _json(call, _page(stored.input_items, request.query_params))
