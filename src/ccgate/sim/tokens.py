"""The simulator's deterministic tokenizer and the prompt as a list of countable segments.

A token is one match of `\\w+|[^\\w\\s]`.  Each message adds MESSAGE_OVERHEAD tokens (on its
first block); tools count as their JSON; a base64 image or PDF counts IMAGE_BASE_TOKENS plus
one token per BASE64_CHARS_PER_TOKEN characters of data (images capped at IMAGE_MAX_TOKENS),
and an image or PDF given by url or file id counts IMAGE_MAX_TOKENS.  /v1/messages and
count_tokens both use `prompt_segments`, so their totals always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3
IMAGE_BASE_TOKENS = 85
IMAGE_MAX_TOKENS = 1600
BASE64_CHARS_PER_TOKEN = 100
UNCACHEABLE_TYPES = frozenset({"thinking", "redacted_thinking"})
RUN_TYPES = frozenset({"tool_use", "tool_result"})  # a run of these is one lookback position (§6.1)


def count_text(text: str) -> int:
    """Tokens in a piece of text."""
    return len(TOKEN_RE.findall(text))


def count_json(value: Any) -> int:
    """Tokens in a value's compact JSON."""
    return count_text(orjson.dumps(value).decode())


def without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    """The block as it counts and hashes: cache_control is an annotation, not content."""
    if "cache_control" not in block:
        return block
    return {key: value for key, value in block.items() if key != "cache_control"}


def _blob_tokens(source: dict[str, Any], cap: int | None) -> int:
    """Tokens of a base64 image or PDF (by payload length) or of one we cannot see (url, file)."""
    if source.get("type") == "base64":
        tokens = IMAGE_BASE_TOKENS + len(source.get("data") or "") // BASE64_CHARS_PER_TOKEN
        return tokens if cap is None else min(cap, tokens)
    return IMAGE_MAX_TOKENS


def content_tokens(content: str | list[Any]) -> int:
    """Tokens of a message or tool_result content: a string or a list of blocks."""
    if isinstance(content, str):
        return count_text(content)
    return sum(block_tokens(block) for block in content if isinstance(block, dict))


def block_tokens(block: dict[str, Any]) -> int:
    """Tokens of one request content block."""
    kind = block.get("type")
    if kind == "text":
        return count_text(block.get("text") or "")
    if kind == "image":
        return _blob_tokens(block.get("source") or {}, IMAGE_MAX_TOKENS)
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            return count_text(source.get("data") or "")
        if source.get("type") == "content":
            return content_tokens(source.get("content") or [])
        return _blob_tokens(source, None)
    if kind == "tool_use":
        return count_text(block.get("name") or "") + count_json(block.get("input") or {})
    if kind == "tool_result":
        return content_tokens(block.get("content") or "")
    if kind == "thinking":
        return count_text(block.get("thinking") or "")
    return count_json(without_cache_control(block))


def truncate_tokens(text: str, limit: int) -> str:
    """The prefix of `text` that holds its first `limit` tokens."""
    if limit <= 0:
        return ""
    for number, match in enumerate(TOKEN_RE.finditer(text), 1):
        if number == limit:
            return text[: match.end()]
    return text


def chunk_text(text: str, tokens_per_chunk: int) -> list[tuple[str, int]]:
    """Split text into pieces of `tokens_per_chunk` tokens each: [(piece, tokens), ...]."""
    starts = [match.start() for match in TOKEN_RE.finditer(text)]
    cuts = [0] + starts[tokens_per_chunk::tokens_per_chunk] + [len(text)]
    counts = [tokens_per_chunk] * (len(cuts) - 2) + [len(starts) - tokens_per_chunk * (len(cuts) - 2)]
    return [(text[a:b], n) for (a, b), n in zip(pairwise(cuts), counts, strict=True) if a < b]


@dataclass(slots=True)
class Segment:
    """One cacheable position of the prompt: a tool, a system block or a message block."""

    tag: bytes  # section and role marker that enters the prefix hash
    block: dict[str, Any]
    tokens: int
    position: int  # lookback position; a run of tool_use or tool_result blocks shares one
    cache_control: dict[str, Any] | None
    cacheable: bool


def prompt_segments(body: dict[str, Any]) -> list[Segment]:
    """Tools, then system, then messages, in canonical order (anthropic-api.md §6.1)."""
    segments: list[Segment] = []
    position = -1
    for tool in body.get("tools") or ():
        position += 1
        segments.append(Segment(b"tool", tool, count_json(without_cache_control(tool)), position,
                                tool.get("cache_control"), True))
    system = body.get("system") or []
    system_blocks: list[dict[str, Any]] = [{"type": "text", "text": system}] if isinstance(system, str) else system
    for block in system_blocks:
        position += 1
        segments.append(Segment(b"system", block, block_tokens(block), position, block.get("cache_control"), True))
    for message in body["messages"]:
        content = message["content"]
        blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if isinstance(content, str) else content
        tag = b"msg:" + message["role"].encode()
        previous = None
        for block in blocks:
            kind = block.get("type")
            if not (kind == previous and kind in RUN_TYPES):
                position += 1
            overhead = MESSAGE_OVERHEAD if previous is None else 0
            segments.append(Segment(tag if previous is None else b"+", block, block_tokens(block) + overhead,
                                    position, block.get("cache_control"), kind not in UNCACHEABLE_TYPES))
            previous = kind
    return segments
