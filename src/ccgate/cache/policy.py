"""What the response cache may answer, under which key, and at what price."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from ccgate.dialects.wire import JsonObject

# Stops that end a whole answer; anything else (max_tokens, refusal, pause) is not replayed.
COMPLETE_STOPS = frozenset({"end_turn", "stop_sequence", "tool_use"})
# Fields that do not change the answer.
NOT_IN_KEY = frozenset({"stream", "metadata"})


@dataclass(frozen=True)
class CacheSettings:
    """The operator's response-cache switches (CCGATE_CACHE_*)."""

    enabled: bool = True
    ttl: int = 3600
    scope: str = "user"  # user | key | global
    hit_price_bp: int = 1000  # a hit costs this share of the original, in basis points (10%)
    max_bytes: int = 64 * 1024 * 1024
    deterministic_only: bool = False  # cache only requests sampled at temperature 0
    coalesce: bool = False  # identical requests in flight at once go upstream once
    exclude_models: frozenset[str] = frozenset()


def bypass_requested(headers: Mapping[str, str]) -> bool:
    """`X-No-Cache: true` or `Cache-Control: no-cache` on the request."""
    return (headers.get("x-no-cache", "").strip().lower() in ("true", "1", "yes")
            or "no-cache" in headers.get("cache-control", "").lower())


def request_key(request: JsonObject, *, model_id: str, scope: str, betas: str) -> str:
    """A hash of everything that changes the answer: the request's fields (the stream flag and
    metadata aside) with the model resolved, the beta features asked for, and the scope."""
    canonical = {name: value for name, value in request.items() if name not in NOT_IN_KEY}
    canonical["model"] = model_id
    payload = orjson.dumps([scope, betas, canonical], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(payload, digest_size=20).hexdigest()


def storable(message: JsonObject) -> bool:
    return message.get("type") == "message" and message.get("stop_reason") in COMPLETE_STOPS


def hit_cost(original_micro: int, hit_price_bp: int) -> int:
    return -(-original_micro * hit_price_bp // 10_000)


def tokens_saved(usage: Mapping[str, int | None]) -> int:
    """The original answer's input (cached or not) and output tokens."""
    return sum(usage.get(field) or 0 for field in (
        "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"))


class CachePolicy:
    """Decides, per request, whether the cache is asked and under which key."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings

    def key_for(self, *, key_id: str, user_id: int, key_cache_enabled: bool, model_id: str, request: JsonObject,
                headers: Mapping[str, str]) -> str | None:
        """The cache key, or None when this request must go upstream (a bypass)."""
        settings = self.settings
        if not settings.enabled or not key_cache_enabled or model_id in settings.exclude_models:
            return None
        if bypass_requested(headers):
            return None
        if settings.deterministic_only and request.get("temperature", 1.0) != 0:
            return None
        scope = {"user": f"user:{user_id}", "key": f"key:{key_id}"}.get(settings.scope, "global")
        return request_key(request, model_id=model_id, scope=scope, betas=headers.get("anthropic-beta", ""))
