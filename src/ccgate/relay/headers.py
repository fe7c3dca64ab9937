"""Which client headers go upstream, and which upstream headers come back."""

from __future__ import annotations

ANTHROPIC_VERSION = "2023-06-01"

# Hop-by-hop headers, credentials, and what the HTTP client sets itself.
_NOT_FORWARDED = frozenset({
    b"host", b"content-length", b"connection", b"keep-alive", b"proxy-authenticate",
    b"proxy-authorization", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
    b"x-api-key", b"authorization", b"cookie", b"accept-encoding", b"x-forwarded-for",
    b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip", b"forwarded", b"x-no-cache",
})


def upstream_headers(client_headers: list[tuple[bytes, bytes]], api_key: str) -> dict[str, str]:
    """Every end-to-end client header (all `anthropic-*` among them), with the account's key in place
    of the client's own."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in client_headers:
        if raw_name in _NOT_FORWARDED:
            continue
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        # A repeated header (one `anthropic-beta` per beta) travels as one comma list.
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers["x-api-key"] = api_key
    headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.setdefault("content-type", "application/json")
    return headers
