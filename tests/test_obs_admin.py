"""The admin API's alert and session-report routes, driven in-process over ASGI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from sqlalchemy import insert

from ccgate.crypto import SecretBox
from ccgate.gate.keys import KeyRecord
from ccgate.http.admin import create_admin_api
from ccgate.store.db import create_engine
from ccgate.store.schema import metadata, usage

ADMIN = KeyRecord(id="k_admin", user_id=1, name="", display="", expires_ms=None, rpm=None, concurrency=None,
                  token_budget=None, window_seconds=None, models=None, user_disabled=False, prepaid=False,
                  is_admin=True)


async def call(app, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One request through the ASGI app; the status and the decoded JSON answer."""
    raw = orjson.dumps(body) if body is not None else b""
    path, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "", "scheme": "http",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "app": app}
    sent: list[dict] = []
    request_sent = False

    async def receive() -> dict:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, orjson.loads(answer) if answer else None


@pytest.fixture
async def admin(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'admin.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    app = create_admin_api()
    app.state.gateway = SimpleNamespace(authenticate=lambda request: ADMIN,
                                        ops=SimpleNamespace(engine=engine, box=SecretBox(b"x" * 32)))
    yield app, engine
    await engine.dispose()


async def test_webhooks_from_the_admin_api(admin) -> None:
    app, _ = admin
    status, answer = await call(app, "POST", "/alerts/webhooks",
                                {"name": "pager", "url": "https://hooks.example/abc?t=1", "secret": "s3cret"})
    assert status == 201 and answer["name"] == "pager"
    assert (await call(app, "POST", "/alerts/webhooks", {"name": "pager", "url": "https://x"}))[0] == 400
    assert (await call(app, "POST", "/alerts/webhooks", {"name": "t", "url": "https://x", "kind": "teams"}))[0] == 422
    status, hooks = await call(app, "GET", "/alerts/webhooks")
    assert status == 200 and hooks[0]["signed"] is True and "s3cret" not in str(hooks) and "abc" not in str(hooks)
    assert (await call(app, "PATCH", "/alerts/webhooks/pager", {"enabled": False}))[0] == 200
    assert (await call(app, "POST", "/alerts/test"))[1] == {"delivered": 0}  # the only webhook is off
    assert (await call(app, "GET", "/alerts/deliveries?limit=5")) == (200, [])
    assert (await call(app, "DELETE", "/alerts/webhooks/pager"))[0] == 200
    assert (await call(app, "DELETE", "/alerts/webhooks/pager"))[0] == 404


async def test_usage_per_session_from_the_admin_api(admin) -> None:
    app, engine = admin
    async with engine.begin() as conn:
        await conn.execute(insert(usage).values(
            request_id="req_1", key_id="k1", user_id=1, model="m", dialect="anthropic", status=200, streamed=True,
            input_tokens=3, output_tokens=4, cost_micro=50, created_ms=10, session_id="sess-x"))
    status, rows = await call(app, "GET", "/usage/sessions?key_id=k1")
    assert status == 200 and rows[0]["session_id"] == "sess-x" and rows[0]["cost_micro"] == 50
