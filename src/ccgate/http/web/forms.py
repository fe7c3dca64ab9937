"""Reading HTML forms: size-capped, and typed fields that refuse with a message the page shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from ccgate import validate

MAX_FORM_BYTES = 64 * 1024
MAX_DRAINED_BYTES = 8 * 1024 * 1024
T = TypeVar("T")


class FormError(Exception):
    """A form field that cannot be used; the page is shown again with this message."""


async def read_form(request: Request) -> FormData:
    """The url-encoded form of a POST (no uploads), refused past MAX_FORM_BYTES.

    An oversized body is read and dropped (up to MAX_DRAINED_BYTES) before the 413, so the client
    gets the answer instead of a connection reset while it is still sending."""
    cached: FormData | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    try:
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        raise HTTPException(400, "bad content-length") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_DRAINED_BYTES:
            break
    if declared > MAX_FORM_BYTES or len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"The form is larger than {MAX_FORM_BYTES // 1024} KB.",
                            headers={"connection": "close"})
    request.state.form = await Request(request.scope, _replay(bytes(body))).form(max_files=0, max_fields=200)
    return request.state.form


def _replay(body: bytes) -> Receive:
    """An ASGI receive that hands over a body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def secret(form: FormData, name: str) -> str:
    """A password field, exactly as typed."""
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def optional_whole(form: FormData, name: str, label: str) -> int | None:
    """A whole number of 0 or more (within the database's range), or None when the field is empty."""
    raw = text(form, name)
    return None if not raw else _checked(validate.whole_number, raw, label)


def number(form: FormData, name: str, label: str, *, negative: bool = False) -> float:
    """A decimal number such as an amount of dollars (a leading $ and thousands commas are fine)."""
    raw = text(form, name).lstrip("$").replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        raise FormError(f"{label} must be a number, e.g. 5 or 2.50") from None
    return _checked(validate.usd, value, label, negative=negative)


def iso_day(raw: str, label: str) -> date | None:
    """A YYYY-MM-DD date in a sane range, or None when empty."""
    return _checked(validate.iso_day, raw, label)


def expiry(form: FormData, name: str, label: str) -> str | None:
    """A key expiry (date or date-time) as typed, checked to be in range; None when empty."""
    return _checked(validate.expiry, text(form, name), label) or None


def _checked(check: Callable[..., T], value: Any, label: str, **options: Any) -> T:
    """`check(value, label)`, its InputError shown on the page as a FormError."""
    try:
        return check(value, label, **options)
    except validate.InputError as error:
        raise FormError(str(error)) from None
