"""Error envelopes of both dialects (DESIGN.md, Errors; anthropic-api.md §4.2, §8.4)."""

from __future__ import annotations

import orjson

from ccgate.dialects.wire import JsonObject


class TranslationError(ValueError):
    """A request that is invalid or cannot be expressed upstream: the client gets a 400
    invalid_request_error naming the parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


# HTTP status -> Anthropic error.type
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Anthropic error.type -> OpenAI error.type
OPENAI_ERROR_TYPES: dict[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "billing_error": "insufficient_quota",
    "permission_error": "permission_error",
    "not_found_error": "not_found_error",
    "conflict_error": "conflict_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "api_error",
    "timeout_error": "api_error",
    "overloaded_error": "service_unavailable",
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic error.type for a status; other 4xx are invalid_request_error, other 5xx api_error."""
    return ANTHROPIC_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error_body(error_type: str, message: str, request_id: str | None) -> bytes:
    """`{"type":"error","error":{"type","message"},"request_id"}` as JSON bytes."""
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    )


def openai_error_object(error_type: str, message: str, code: str | None = None) -> JsonObject:
    """OpenAI's `{"error": {...}}` for an Anthropic error.type."""
    return {
        "error": {
            "message": message,
            "type": OPENAI_ERROR_TYPES.get(error_type, error_type),
            "param": None,
            "code": code,
        }
    }


def openai_error_body(error_type: str, message: str, code: str | None = None) -> bytes:
    """OpenAI's error envelope as JSON bytes."""
    return orjson.dumps(openai_error_object(error_type, message, code))
