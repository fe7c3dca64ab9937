"""Which client headers go upstream: an explicit allowlist of what Anthropic reads.

A client header reaches the upstream only if its name is listed in `FORWARDED_NAMES` or starts
with one of `FORWARDED_PREFIXES`:

- `anthropic-*`: the API version, the beta list (forwarded verbatim, never filtered by value) and
  the other Anthropic request options such as `anthropic-dangerous-direct-browser-access`;
- `content-type`, `accept`, `user-agent`;
- `x-stainless-*`: the SDKs' platform, retry-count and timeout headers;
- `x-claude-code-*` (session, agent and parent-agent ids) and `x-app`, sent by Claude Code.

Everything else is dropped, in particular hop-by-hop and forwarding headers (`connection`,
`x-forwarded-*`, `forwarded`, `true-client-ip`, ...), cookies, `origin`/`referer`, test hooks
such as `x-sim-*`, and the client's own credentials (`x-api-key`, `authorization`): the
account's key takes their place.
"""

from __future__ import annotations

ANTHROPIC_VERSION = "2023-06-01"

FORWARDED_NAMES = frozenset({b"content-type", b"accept", b"user-agent", b"x-app"})
FORWARDED_PREFIXES = (b"anthropic-", b"x-stainless-", b"x-claude-code-")


def upstream_headers(client_headers: list[tuple[bytes, bytes]], api_key: str) -> dict[str, str]:
    """The allowed client headers, with the account's key in place of the client's own."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in client_headers:
        if raw_name not in FORWARDED_NAMES and not raw_name.startswith(FORWARDED_PREFIXES):
            continue
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        # A repeated header (one `anthropic-beta` per beta) travels as one comma list.
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    headers["x-api-key"] = api_key
    headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    headers.setdefault("content-type", "application/json")
    return headers
