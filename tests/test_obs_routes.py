"""Which requests are observed, under which route name: the API routes, once each, and nothing else."""

from __future__ import annotations

from typing import Any

from ccgate.obs.record import RequestRecord
from fakes import FakeServices, answer, api, call_asgi, core, error, key

BODY = b'{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'


class Seen:
    """An observer that keeps what it is told."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def finished(self, record: RequestRecord, span: Any = None, response_model: str | None = None) -> None:
        self.records.append(record)


async def test_api_routes_are_observed_by_name_and_the_others_not_at_all() -> None:
    rig = core(accounts=1)
    seen = rig.pipeline.observer = Seen()  # type: ignore[assignment]
    app = api(FakeServices(rig, {"secret": key()}))
    rig.upstream.queue("http://upstream-1", answer())
    made = await call_asgi(app, path="/v1/messages", body=BODY, headers={"x-api-key": "secret"})
    assert made.status == 200
    refused = await call_asgi(app, path="/v1/chat/completions", body=BODY, headers={"x-api-key": "wrong"})
    assert refused.status == 401
    for path in ("/v1/models", "/v1/key-status", f"/v1/usage/{made.headers['request-id']}"):
        assert (await call_asgi(app, method="GET", path=path, headers={"x-api-key": "secret"})).status == 200
    assert [(record.route, record.dialect, record.status) for record in seen.records] == [
        ("messages", "anthropic", 200), ("chat_completions", "openai", 401)]
    assert seen.records[1].refusal == "auth"


async def test_a_request_refused_at_admission_was_no_cache_lookup() -> None:
    rig = core(accounts=1, cache=True)
    seen = rig.pipeline.observer = Seen()  # type: ignore[assignment]
    app = api(FakeServices(rig, {"secret": key(rpm=1)}))
    rig.upstream.queue("http://upstream-1", answer())
    for _ in range(2):
        await call_asgi(app, path="/v1/messages", body=BODY, headers={"x-api-key": "secret"})
    assert [(record.status, record.refusal, record.cache) for record in seen.records] == [
        (200, None, "MISS"), (429, "rpm", None)]


async def test_count_tokens_is_observed_with_the_upstreams_status_and_account() -> None:
    rig = core(accounts=1)
    seen = rig.pipeline.observer = Seen()  # type: ignore[assignment]
    app = api(FakeServices(rig, {"secret": key()}))
    rig.upstream.queue("http://upstream-1", answer(200, {"input_tokens": 9}),
                       error(400, "invalid_request_error"))
    for _ in range(2):
        await call_asgi(app, path="/v1/messages/count_tokens", body=BODY, headers={"x-api-key": "secret"})
    assert [(record.route, record.status, record.account, len(record.attempts)) for record in seen.records] == [
        ("count_tokens", 200, "account-1", 1), ("count_tokens", 400, "account-1", 1)]
