"""The OTLP body ccgate writes is the SDK encoder's for the spans it would make, byte for byte; a request
it cannot write goes the SDK's way."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from ccgate.obs.otlp import OTLPRequestExporter, encode_requests, request_exporter
from ccgate.obs.record import RequestRecord
from ccgate.obs.spans import FinishedRequest, RequestTrace, SpanMaker, SpanMakingExporter, Step, UpstreamCall
from ccgate.obs.tracing import Tracing

MAKER = SpanMaker(resource=Resource.create({"service.name": "ccgate", "deployment.environment": "test",
                                            "replicas": 3}))
ids = st.integers(1, 2**64 - 1)
times = st.integers(1, 2**63)
texts = st.text(max_size=30)
counts = st.integers(0, 2**40)
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
states = st.dictionaries(names, st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), max_size=3)


@st.composite
def finished_requests(draw: st.DrawFn) -> FinishedRequest:
    trace_id = draw(st.integers(1, 2**128 - 1))
    parent = None
    if draw(st.booleans()):
        parent = SpanContext(trace_id, draw(ids), draw(st.booleans()), TraceFlags(1),
                             TraceState(list(draw(states).items())))
    trace = RequestTrace(trace_id, draw(ids), parent, True, draw(st.sampled_from(["chat", "count_tokens"])),
                         draw(texts), draw(counts), draw(times))
    for _ in range(draw(st.integers(0, 5))):
        call = None
        if draw(st.booleans()):
            call = UpstreamCall(trace, draw(ids), draw(times), draw(texts), draw(texts))
        trace.steps.append(Step(
            draw(texts), draw(times), draw(times), call.span_id if call else draw(ids), call,
            draw(st.none() | st.integers(100, 599)), draw(st.none() | texts), draw(st.none() | texts)))
    record = RequestRecord(
        draw(texts), "messages", "anthropic", draw(st.integers(100, 599)), model=draw(texts),
        account=draw(st.none() | texts), stream=draw(st.booleans()), error_type=draw(st.none() | texts),
        input_tokens=draw(counts), output_tokens=draw(counts), cache_read_tokens=draw(counts),
        cache_write_5m_tokens=draw(counts), cache_write_1h_tokens=draw(counts), cost_micro=draw(counts),
        cache=draw(st.sampled_from([None, "HIT", "MISS"])), total_seconds=draw(st.floats(0, 1e6)),
        upstream_seconds=draw(st.floats(0, 1e6)))
    return FinishedRequest(trace, record, draw(times), draw(st.none() | texts), MAKER.sampled_context)


def sdk_body(batch: list[FinishedRequest]) -> bytes:
    return encode_spans([span for finished in batch for span in MAKER.make(finished)]).SerializeToString()


@settings(max_examples=150, deadline=None)
@given(st.lists(finished_requests(), min_size=1, max_size=4))
def test_the_body_is_the_sdk_encoders_byte_for_byte(batch: list[FinishedRequest]) -> None:
    assert encode_requests(batch, MAKER.resource, MAKER.scope) == sdk_body(batch)


def a_finished_request(cost_micro: int = 12) -> FinishedRequest:
    tracing = Tracing(InMemorySpanExporter(), processor=SimpleSpanProcessor)
    trace = tracing.start_request("messages", "claude-m1")
    assert trace is not None
    record = RequestRecord("req_1", "messages", "anthropic", 200, model="claude-m1", cost_micro=cost_micro)
    return FinishedRequest(trace, record, trace.start + 1000, None, MAKER.sampled_context)


def test_a_request_holding_what_it_does_not_write_is_left_to_the_sdk() -> None:
    assert encode_requests([a_finished_request(cost_micro=2**64)], MAKER.resource, MAKER.scope) is None


def test_only_the_otlp_exporter_takes_the_written_bodies() -> None:
    assert type(request_exporter(OTLPSpanExporter(), MAKER)) is OTLPRequestExporter
    assert type(request_exporter(InMemorySpanExporter(), MAKER)) is SpanMakingExporter


@pytest.mark.parametrize("cost_micro", [12, 2**64], ids=["written", "left-to-the-sdk"])
def test_spans_reach_an_otlp_receiver_either_way(otlp_receiver, monkeypatch: pytest.MonkeyPatch,
                                                  cost_micro: int) -> None:
    url, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    exporter = OTLPRequestExporter(OTLPSpanExporter(), MAKER)
    assert exporter.export([a_finished_request(cost_micro)]).name == "SUCCESS"
    exporter.shutdown()
    spans = [span for message in received for resource in message.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    assert [span.name for span in spans] == ["chat claude-m1"]
    cost = [item.value.int_value for item in spans[0].attributes if item.key == "ccgate.cost_micro"]
    assert cost == ([12] if cost_micro == 12 else [])  # the SDK's encoder drops what it cannot write
