"""What a client dialect must say: the seam between the pipeline and each wire format."""

from __future__ import annotations

from typing import Any, Protocol


class Dialect(Protocol):
    """How answers are spoken to the client: Anthropic bytes as they are, or translations."""

    name: str

    def answer(self, raw: bytes, message: dict[str, Any]) -> bytes:
        """A whole upstream message (its raw bytes and parsed form) as the client's body."""
        ...

    def stream_chunk(self, raw: bytes, blocks: list[bytes]) -> bytes:
        """An upstream stream chunk (raw, and the whole SSE events it completed) as client bytes."""
        ...

    def stream_error(self, error_type: str, message: str) -> bytes:
        """An error event that ends a stream already under way."""
        ...

    def stream_end(self) -> bytes:
        """The dialect's end-of-stream marker (empty for Anthropic)."""
        ...

    def upstream_error(self, status: int, raw: bytes) -> bytes:
        """An upstream error body re-spoken in the dialect's envelope."""
        ...
