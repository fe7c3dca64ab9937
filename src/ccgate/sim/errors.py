"""The simulator's one exception: an Anthropic-shaped error response waiting to be sent."""

from __future__ import annotations

from ccgate.dialects.errors import anthropic_error_type


class ApiError(Exception):
    """An error the simulator answers with `{"type":"error",...}` and the given status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    @property
    def error_type(self) -> str:
        """Anthropic's error.type for this status."""
        return anthropic_error_type(self.status)


def invalid(message: str) -> ApiError:
    """A 400 invalid_request_error."""
    return ApiError(400, message)
