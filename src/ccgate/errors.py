"""The gateway's own refusals, raised anywhere below http and spoken in the caller's dialect."""

from __future__ import annotations

import math

from ccgate.dialects.errors import anthropic_error_type


class GatewayError(Exception):
    """A request the gateway answers with an error status, in the caller's dialect."""

    def __init__(self, status: int, message: str, *, error_type: str | None = None,
                 retry_after: float | None = None, should_retry: bool | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or anthropic_error_type(status)
        self.retry_after = retry_after
        self.should_retry = should_retry
        self.extra_headers: dict[str, str] = {}

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


def invalid(message: str) -> GatewayError:
    return GatewayError(400, message)
