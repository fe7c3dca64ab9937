"""The session a request belongs to, so a conversation stays on one account (and its prompt cache)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

from ccgate.dialects.wire import JsonObject


def _session_in_user_id(user_id: str) -> str | None:
    """Claude Code's session: `user_<hex>_account_<uuid>_session_<uuid>`, or JSON with `session_id`."""
    if "_session_" in user_id:
        return user_id.rsplit("_session_", 1)[1] or None
    if user_id.startswith("{"):
        try:
            session = orjson.loads(user_id).get("session_id")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return session if isinstance(session, str) and session else None
    return None


def session_key(key_id: str, request: JsonObject, session_header: str | None) -> str:
    """A key-scoped session id: from `metadata.user_id`, the `x-claude-code-session-id` header, or
    else a hash of the system prompt and the first message (which a conversation keeps)."""
    metadata = request.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    session = _session_in_user_id(user_id) if isinstance(user_id, str) else None
    if session is None and session_header:
        session = session_header
    if session is None:
        messages = request.get("messages") or [None]
        seed = orjson.dumps([request.get("system"), messages[0]], option=orjson.OPT_SORT_KEYS)
        session = hashlib.blake2b(seed, digest_size=16).hexdigest()
    return f"{key_id}:{session}"


def claude_code_session(headers: Mapping[str, str]) -> str | None:
    """The client's `x-claude-code-session-id`, as stored for cost per session (at most 128 characters)."""
    return (headers.get("x-claude-code-session-id") or "")[:128] or None
