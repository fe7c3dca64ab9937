"""Incremental server-sent-events framing: cut a byte stream into whole events, cheaply."""

from __future__ import annotations


class EventSplitter:
    """Feeds on upstream chunks and returns the events each one completes, as raw blocks."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk if self._pending else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self._pending = data.split(b"\n\n")
        return blocks

    @property
    def pending(self) -> bytes:
        """Bytes of an event not finished yet."""
        return self._pending


def event_name(block: bytes) -> bytes:
    """The `event:` field of a block, or b"" when the block has none first."""
    if block.startswith(b"event:"):
        end = block.find(b"\n")
        return block[6:end if end >= 0 else None].strip()
    return b""


def event_data(block: bytes) -> bytes:
    """The joined `data:` lines of a block."""
    lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)


def encode_event(name: str, data: bytes) -> bytes:
    """One Anthropic-style event: an `event:` line, a `data:` line and a blank line."""
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"
