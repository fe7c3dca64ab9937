"""Prompt caching as anthropic-api.md §6.1-6.4 describe it, by the algorithm of §6.7."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

from ccgate.sim.errors import invalid
from ccgate.sim.tokens import Segment, without_cache_control

TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK = 20
MAX_BREAKPOINTS = 4
PURGE_THRESHOLD = 100_000


@dataclass(slots=True)
class Breakpoint:
    """A cache_control position: index into the segments and its TTL."""

    index: int
    ttl: str


@dataclass(slots=True)
class CacheUsage:
    """How a request's input splits into uncached, written (per TTL) and read tokens."""

    input_tokens: int
    write_5m: int = 0
    write_1h: int = 0
    read: int = 0

    def usage(self, output_tokens: int, inference_geo: str = "not_available") -> dict[str, Any]:
        """The full `usage` object of a response (anthropic-api.md §2)."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.write_5m + self.write_1h,
            "cache_read_input_tokens": self.read,
            "cache_creation": {"ephemeral_5m_input_tokens": self.write_5m, "ephemeral_1h_input_tokens": self.write_1h},
            "output_tokens": output_tokens,
            "service_tier": "standard",
            "inference_geo": inference_geo,
        }


def _ttl(cache_control: Any, loc: str) -> str:
    """The TTL of a cache_control object, validated."""
    if not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral":
        raise invalid(f"{loc}.type: Input should be 'ephemeral'")
    ttl = cache_control.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise invalid(f"{loc}.ttl: Input should be '5m' or '1h'")
    return ttl


def breakpoints(segments: list[Segment], top_level: Any) -> list[Breakpoint]:
    """Explicit breakpoints plus automatic caching's one on the last cacheable block (§6.1)."""
    found = [Breakpoint(i, _ttl(seg.cache_control, "cache_control"))
             for i, seg in enumerate(segments) if seg.cache_control is not None and seg.cacheable]
    if top_level is not None:
        ttl = _ttl(top_level, "cache_control")
        last = next((i for i in range(len(segments) - 1, -1, -1) if segments[i].cacheable), None)
        if last is not None and found and found[-1].index == last:
            if found[-1].ttl != ttl:
                raise invalid("cache_control: the top-level cache_control ttl conflicts with the ttl "
                              "of the cache_control already set on the last cacheable block")
        elif last is not None:
            found.append(Breakpoint(last, ttl))
    if len(found) > MAX_BREAKPOINTS:
        raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(found)}.")
    ttls = [bp.ttl for bp in found]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m"):]:
        raise invalid("cache_control: a breakpoint with ttl '1h' must not come after a breakpoint with ttl '5m'")
    return found


class PromptCache:
    """Cache entries keyed by (api key, model, prefix hash), each with an expiry refreshed on hit."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, bytes], list[float]] = {}  # key -> [expires_at, ttl_seconds]

    def account(self, api_key: str, model: str, segments: list[Segment], points: list[Breakpoint],
                min_tokens: int, context: bytes, now: float) -> CacheUsage:
        """Read the longest cached prefix, write every eligible breakpoint, report the split (§6.4)."""
        cumulative = list(accumulate(seg.tokens for seg in segments))
        total = cumulative[-1] if cumulative else 0
        eligible = [bp for bp in points if cumulative[bp.index] >= min_tokens]
        if not eligible:
            return CacheUsage(total)
        hashes = _prefix_hashes(segments[: eligible[-1].index + 1], context)
        read = 0
        for bp in eligible:
            floor = segments[bp.index].position - LOOKBACK + 1
            for j in range(bp.index, -1, -1):
                if segments[j].position < floor:
                    break
                entry = self._entries.get((api_key, model, hashes[j]))
                if entry is not None and entry[0] > now:
                    entry[0] = now + entry[1]
                    read = max(read, cumulative[j])
                    break
        last = cumulative[eligible[-1].index]
        hour = max((cumulative[bp.index] for bp in eligible if bp.ttl == "1h" and cumulative[bp.index] > read),
                   default=read)
        for bp in eligible:
            self._write((api_key, model, hashes[bp.index]), TTL_SECONDS[bp.ttl], now)
        return CacheUsage(input_tokens=total - last, write_5m=last - hour, write_1h=hour - read, read=read)

    def _write(self, key: tuple[str, str, bytes], ttl: float, now: float) -> None:
        """Create or extend an entry; never shortens a longer-lived one."""
        if len(self._entries) > PURGE_THRESHOLD:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = [now + ttl, ttl]
        else:
            entry[0], entry[1] = max(entry[0], now + ttl), max(entry[1], ttl)


def _prefix_hashes(segments: list[Segment], context: bytes) -> list[bytes]:
    """Cumulative hash at each segment; `context` (tool_choice, thinking) enters before the messages."""
    digest = hashlib.blake2b(digest_size=16)
    hashes = []
    in_messages = False
    for seg in segments:
        if not in_messages and seg.tag not in (b"tool", b"system"):
            digest.update(context)
            in_messages = True
        digest.update(seg.tag)
        digest.update(orjson.dumps(without_cache_control(seg.block), option=orjson.OPT_SORT_KEYS))
        hashes.append(digest.digest())
    return hashes
