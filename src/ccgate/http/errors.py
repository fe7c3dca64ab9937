"""How each dialect spells a gateway error on the wire."""

from __future__ import annotations

from ccgate.dialects.errors import anthropic_error_body, openai_error_body
from ccgate.errors import GatewayError


def encode_error(dialect: str, error: GatewayError, request_id: str) -> bytes:
    """The error body in Anthropic's or OpenAI's envelope."""
    if dialect in ("openai", "responses"):
        return openai_error_body(error.error_type, error.message, _openai_code(error))
    return anthropic_error_body(error.error_type, error.message, request_id)


def _openai_code(error: GatewayError) -> str | None:
    return {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded",
            402: "insufficient_quota"}.get(error.status)
