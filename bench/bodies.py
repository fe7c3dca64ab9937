"""The request bodies the benchmark sends, written once to files for wrk and curl.

Each is a plain-text, one-turn conversation, and such a body reads the same in both dialects: the
very bytes POSTed to /v1/messages are a valid /v1/chat/completions request, which ccgate
translates back into an Anthropic one.  So the two dialects are measured on one workload.
"""

from __future__ import annotations

from pathlib import Path

import orjson

MODEL = "claude-sonnet-4-6"
SMALL_PROMPT = "Say hello."


def body(text: str, *, max_tokens: int, stream: bool) -> bytes:
    fields = {"model": MODEL, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]}
    return orjson.dumps(fields | {"stream": True} if stream else fields)


class Bodies:
    """Each kind of request as a file: `bodies.small`, `.stream`, `.events`, `.open`."""

    def __init__(self, directory: Path, open_stream_tokens: int) -> None:
        self.small = self._write(directory / "small.json", SMALL_PROMPT, 16, False)  # throughput and latency
        self.stream = self._write(directory / "stream.json", SMALL_PROMPT, 16, True)  # time to first byte
        # ~400 output tokens: many events per response, for the relay cost per event
        self.events = self._write(directory / "events.json", "[[sim:tokens=400]]", 1024, True)
        # streams that stay open as long as a paced simulator takes to say this many tokens
        self.open = self._write(directory / "open.json", f"[[sim:tokens={open_stream_tokens}]]",
                                2 * open_stream_tokens, True)

    @staticmethod
    def _write(path: Path, text: str, max_tokens: int, stream: bool) -> Path:
        path.write_bytes(body(text, max_tokens=max_tokens, stream=stream))
        return path
