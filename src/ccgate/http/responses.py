"""The Responses dialect: POST /v1/responses on the same pipeline as /v1/messages, and the stored responses
behind previous_response_id (GET, DELETE, input_items), each user seeing only their own."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from ccgate.call import Call
from ccgate.dialects.anthropic_stream import MessageBuilder
from ccgate.dialects.errors import openai_error_body
from ccgate.dialects.openai_request import TranslationError
from ccgate.dialects.responses_request import input_items, to_anthropic_request
from ccgate.dialects.responses_response import failed, in_progress, response_frame, to_response
from ccgate.dialects.responses_stream import ResponseEventTranslator, encode
from ccgate.errors import GatewayError, invalid
from ccgate.http.bodies import parse_body
from ccgate.http.endpoint import endpoint
from ccgate.relay.sse import event_data, event_name
from ccgate.route.sessions import session_key
from ccgate.store import responses_repo

if TYPE_CHECKING:
    from ccgate.app import Gateway

log = logging.getLogger("ccgate.responses")
Json = dict[str, Any]
KEEP_ALIVE = b": keep-alive\n\n"
UNFINISHED_WAIT_S = 5.0  # how long a read waits for an answer still being written
_writes: set[asyncio.Task[None]] = set()  # stored-response writes under way (the loop holds tasks weakly)


class ResponsesDialect:
    """Translates each Anthropic answer into a Response, whole or as Responses stream events.

    Once an answer is complete, `finished` holds (Anthropic message, Response) and `on_finish` is called.
    """

    name = "responses"

    def __init__(self) -> None:
        self.frame: Json = {}
        self.translator: ResponseEventTranslator | None = None
        self.builder = MessageBuilder()
        self.finished: tuple[Json, Json] | None = None
        self.on_finish: Callable[[], None] = lambda: None
        self.on_fail: Callable[[Json], None] = lambda response: None
        self.saving: asyncio.Task[None] | None = None

    def begin(self, frame: Json) -> None:
        self.frame = frame
        self.translator = ResponseEventTranslator(frame)

    def _finish(self, message: Json, response: Json) -> None:
        self.finished = (message, response)
        self.on_finish()

    def answer(self, raw: bytes, message: Json) -> bytes:
        response = to_response(message, self.frame)
        self._finish(message, response)
        return orjson.dumps(response)

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        assert self.translator is not None
        out = []
        for block in blocks:
            if event_name(block) == b"ping":  # upstream is thinking: keep the client's connection warm
                out.append(KEEP_ALIVE)
                continue
            if not (data := event_data(block)):
                continue
            event = orjson.loads(data)
            self.builder.feed(event)
            out.extend(encode(translated) for translated in self.translator.feed(event))
            if event.get("type") == "message_stop" and self.translator.response and self.builder.message:
                self._finish(self.builder.message, self.translator.response)
            elif event.get("type") == "error" and self.translator.response:
                self.on_fail(self.translator.response)
        return b"".join(out)

    def stream_error(self, error_type: str, message: str) -> bytes:
        translator = self.translator or ResponseEventTranslator(self.frame)
        events = translator.fail(error_type, message)
        self.on_fail(events[-1]["response"])
        return b"".join(encode(event) for event in events)

    def stream_end(self) -> bytes:
        return b""

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        """Anthropic's error, re-spoken in OpenAI's envelope with the same type and message."""
        try:
            error = orjson.loads(raw)["error"]
            error_type, message = str(error["type"]), str(error["message"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            error_type, message = "api_error", f"upstream answered HTTP {status}"
        self.on_fail(failed(self.frame, self.frame.get("model") or "", [], error_type, message))
        return openai_error_body(error_type, message)


def _dialect(call: Call) -> ResponsesDialect:
    assert isinstance(call.dialect, ResponsesDialect)
    return call.dialect


async def _stored(gateway: Gateway, response_id: str, user_id: int, *, wait: bool = False
                  ) -> responses_repo.StoredResponse:
    """This user's stored response, or 404; with `wait`, give an answer still being written a moment."""
    deadline = time.monotonic() + (UNFINISHED_WAIT_S if wait else 0)
    while True:
        async with gateway.engine.connect() as conn:
            stored = await responses_repo.get_response(conn, response_id, user_id)
        if stored is None:
            raise GatewayError(404, f"No response found with id '{response_id}'.")
        if stored.status != "in_progress" or time.monotonic() >= deadline:
            return stored
        await asyncio.sleep(0.05)


async def _history(gateway: Gateway, call: Call, data: Json) -> list[Json]:
    """The Anthropic turns of the conversation previous_response_id continues."""
    previous = data.get("previous_response_id")
    if previous is None:
        return []
    if not isinstance(previous, str):
        raise invalid("previous_response_id: expected a string")
    assert call.key is not None
    stored = await _stored(gateway, previous, call.key.user_id, wait=True)
    if stored.turns is None:
        raise invalid(f"previous_response_id: response '{previous}' has no finished answer to continue from")
    return stored.turns


def _numbered_items(data: Json, response_id: str) -> list[Json]:
    """The request's input items, each with an id as input_items lists them."""
    suffix = response_id.removeprefix("resp_")
    return [item if isinstance(item, dict) and item.get("id") else
            {**(item if isinstance(item, dict) else {}), "id": f"item_{suffix}_{i}"}
            for i, item in enumerate(input_items(data))]


def _store_on_finish(gateway: Gateway, call: Call, translated: Json) -> None:
    """Once the answer is complete, store it with the conversation it continues (in the background)."""
    dialect = _dialect(call)

    async def save() -> None:
        assert dialect.finished is not None
        message, response = dialect.finished
        turns = list(translated["messages"])
        if message.get("content"):
            turns.append({"role": "assistant", "content": message["content"]})
        async with gateway.engine.begin() as conn:
            await responses_repo.finish_response(conn, dialect.frame["id"], response, turns)

    def fail(response: Json) -> Callable[[], Coroutine[Any, Any, None]]:
        async def write() -> None:
            async with gateway.engine.begin() as conn:
                await responses_repo.fail_response(conn, dialect.frame["id"], response)
        return write

    def start(write: Callable[[], Coroutine[Any, Any, None]]) -> None:
        dialect.saving = task = asyncio.get_running_loop().create_task(write())
        _writes.add(task)
        task.add_done_callback(_written)

    dialect.on_finish = lambda: start(save)
    dialect.on_fail = lambda response: start(fail(response))


def _written(task: asyncio.Task[None]) -> None:
    _writes.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("storing a response failed: %s", error)


@endpoint(ResponsesDialect, recorded=True)
async def create_response(request: Request, gateway: Gateway, call: Call) -> Response:
    call.key = gateway.authenticate(request)
    data = parse_body(await gateway.read_body(request))
    if not isinstance(data.get("model"), str):
        raise invalid("model: Field required" if "model" not in data else "model: Input should be a valid string")
    call.model = gateway.resolve_model(data["model"])
    history = await _history(gateway, call, data)
    try:
        translated = to_anthropic_request(data, default_max_tokens=call.model.max_tokens, history=history)
    except TranslationError as error:
        raise invalid(error.message) from None
    response_id = "resp_" + call.request_id.removeprefix("req_")
    frame = response_frame(data, response_id=response_id, created_at=int(time.time()))
    _dialect(call).begin(frame)
    if frame["store"]:
        try:
            async with gateway.engine.begin() as conn:
                await responses_repo.begin_response(
                    conn, response_id=response_id, user_id=call.key.user_id, key_id=call.key.id,
                    input_items=_numbered_items(data, response_id), retention_s=gateway.settings.responses_retention,
                    response=in_progress(frame, frame["model"]))
        except SQLAlchemyError as exc:
            raise GatewayError(503, "the response could not be stored; retry shortly, or send store: false",
                               retry_after=5) from exc
        _store_on_finish(gateway, call, translated)
    call.stream = bool(translated.get("stream"))
    call.max_tokens = translated["max_tokens"]
    upstream_body = orjson.dumps(translated)
    call.body_size = len(upstream_body)
    call.session = session_key(call.key.id, translated, request.headers.get("x-claude-code-session-id"))
    gateway.ask_cache(call, translated, request.headers)
    response = await gateway.pipeline.run(call, "/v1/messages", upstream_body, request.headers.raw)
    if not call.stream and (saving := _dialect(call).saving) is not None:  # stored before the client asks
        await saving
    return response


def _json(call: Call, payload: Json) -> Response:
    return Response(orjson.dumps(payload), 200, headers=call.id_headers(), media_type="application/json")


@endpoint(ResponsesDialect)
async def get_response(request: Request, gateway: Gateway, call: Call) -> Response:
    key = gateway.authenticate(request)
    if request.query_params.get("stream", "false").lower() != "false":
        raise invalid("stream: replaying a stored response as a stream is not supported")
    stored = await _stored(gateway, request.path_params["response_id"], key.user_id, wait=True)
    assert stored.response is not None
    return _json(call, stored.response)


@endpoint(ResponsesDialect)
async def delete_response(request: Request, gateway: Gateway, call: Call) -> Response:
    key = gateway.authenticate(request)
    response_id = request.path_params["response_id"]
    async with gateway.engine.begin() as conn:
        deleted = await responses_repo.delete_response(conn, response_id, key.user_id)
    if not deleted:
        raise GatewayError(404, f"No response found with id '{response_id}'.")
    return _json(call, {"id": response_id, "object": "response", "deleted": True})


def _page(items: list[Json], params: Any) -> Json:
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
async def list_input_items(request: Request, gateway: Gateway, call: Call) -> Response:
    key = gateway.authenticate(request)
    stored = await _stored(gateway, request.path_params["response_id"], key.user_id)
    return _json(call, _page(stored.input_items, request.query_params))
