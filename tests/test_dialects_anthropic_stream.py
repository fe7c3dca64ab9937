"""A whole message replayed as events and rebuilt from them is the same message (the cache relies on it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ccgate.dialects.anthropic_stream import (
    MessageBuilder,
    encode_events,
    message_events,
)
from ccgate.dialects.sse import EventSplitter, event_data, event_name

text = st.text(max_size=300)
blocks = st.lists(st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, text),
    st.builds(lambda i, n, args: {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": args},
              st.integers(0, 99), st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
              st.dictionaries(st.text(max_size=8), st.one_of(st.integers(-2**63, 2**63 - 1), text, st.booleans()),
                              max_size=4)),
    st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, text, st.text(min_size=1, max_size=40)),
), max_size=5)


def message(content: list[dict], stop: str, output: int) -> dict:
    return {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3,
                      "output_tokens": output}}


@given(blocks, st.sampled_from(["end_turn", "tool_use", "stop_sequence"]), st.integers(1, 5000))
def test_events_rebuild_the_message(content, stop, output):
    original = message(content, stop, output)
    builder = MessageBuilder()
    for event in message_events(original):
        builder.feed(event)
    assert builder.complete and builder.message == original


@given(blocks, st.integers(1, 50))
def test_encoded_events_are_well_formed_sse_in_order(content, cut):
    encoded = encode_events(message_events(message(content, "end_turn", 7)))
    splitter, names = EventSplitter(), []
    for start in range(0, len(encoded), cut):
        for block in splitter.feed(encoded[start:start + cut]):
            assert event_data(block)
            names.append(event_name(block))
    assert splitter.pending == b""
    assert names[0] == b"message_start" and names[-2:] == [b"message_delta", b"message_stop"]
    assert names.count(b"content_block_start") == names.count(b"content_block_stop") == len(content)
