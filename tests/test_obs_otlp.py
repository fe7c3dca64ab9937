"""The OTLP body ccgate writes is the SDK encoder's, byte for byte; what it cannot write goes the SDK's way."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from ccgate.obs.otlp import OTLPHTTPSpanExporter, encode_request
from test_obs_tracing import otlp_receiver  # noqa: F401  (a fixture)

RESOURCE = Resource.create({"service.name": "ccgate", "deployment.environment": "test", "replicas": 3})
SCOPE = InstrumentationScope("ccgate", "2.0")

ids = st.integers(1, 2**64 - 1)
texts = st.text(max_size=40)
values = st.one_of(texts, st.booleans(), st.integers(-(2**63), 2**63 - 1),
                   st.floats(allow_nan=False), st.none())
statuses = st.one_of(st.just(Status()), st.just(Status(StatusCode.OK)),
                     st.builds(lambda text: Status(StatusCode.ERROR, text), texts))
states = st.one_of(st.none(), st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
                                              st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), max_size=3))


@st.composite
def spans(draw: st.DrawFn, resource: Resource = RESOURCE, scope: InstrumentationScope = SCOPE) -> ReadableSpan:
    trace_id = draw(st.integers(1, 2**128 - 1))
    state = draw(states)
    trace_state = TraceState(list(state.items())) if state is not None else None
    parent = draw(st.one_of(st.none(), st.builds(
        lambda span_id, remote: SpanContext(trace_id, span_id, remote, TraceFlags(1)), ids, st.booleans())))
    start = draw(st.integers(0, 2**63))
    return ReadableSpan(
        draw(texts), SpanContext(trace_id, draw(ids), False, TraceFlags(1), trace_state), parent, resource,
        draw(st.dictionaries(st.from_regex(r"[a-z_.]{1,30}", fullmatch=True), values, max_size=20)),
        kind=draw(st.sampled_from(SpanKind)), status=draw(statuses), start_time=start,
        end_time=draw(st.integers(start, 2**64 - 1)), instrumentation_scope=scope)


@settings(max_examples=200, deadline=None)
@given(st.lists(spans(), min_size=1, max_size=6))
def test_the_body_is_the_sdk_encoders_byte_for_byte(batch: list[ReadableSpan]) -> None:
    assert encode_request(batch) == encode_spans(batch).SerializeToString()


def test_non_finite_floats_are_encoded_as_the_sdk_encodes_them() -> None:
    batch = [ReadableSpan("x", SpanContext(1, 2, False), attributes={"a": math.nan, "b": -math.inf, "c": 0.0},
                          resource=RESOURCE, instrumentation_scope=SCOPE)]
    assert encode_request(batch) == encode_spans(batch).SerializeToString()


def a_span(**overrides: object) -> ReadableSpan:
    fields: dict = {"name": "chat m", "context": SpanContext(1, 2, False), "resource": RESOURCE,
                    "instrumentation_scope": SCOPE, "attributes": {"a": 1}}
    return ReadableSpan(**(fields | overrides))


@pytest.mark.parametrize("batch", [
    [],
    [a_span(attributes={"list": ("a", "b")})],  # arrays: not written here
    [a_span(attributes={"big": 2**64})],  # outside int64
    [a_span(events=(Event("e"),))],
    [a_span(), a_span(resource=Resource.create({"service.name": "other"}))],  # two resources
    [a_span(instrumentation_scope=None)],
], ids=["empty", "array", "big-int", "events", "two-resources", "no-scope"])
def test_what_it_does_not_write_is_left_to_the_sdk(batch: list[ReadableSpan]) -> None:
    assert encode_request(batch) is None


def test_the_exporter_sends_both_bodies_to_an_otlp_receiver(otlp_receiver,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    exporter = OTLPHTTPSpanExporter()
    written, left = [a_span(name="written")], [a_span(name="left", attributes={"list": ("a", "b")})]
    assert exporter.export(written).name == "SUCCESS" and exporter.export(left).name == "SUCCESS"
    exporter.shutdown()
    names = [span.name for message in received for resource in message.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    assert names == ["written", "left"]
    assert isinstance(received[0], ExportTraceServiceRequest)

