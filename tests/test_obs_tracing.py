"""Traces: off by default at no cost, GenAI attributes on, context carried upstream, OTLP/HTTP export."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from ccgate.obs.record import RequestRecord
from ccgate.obs.tracing import HeadSampling, Tracing, head_sampling, sdk_sampler, tracing_requested


def a_record() -> RequestRecord:
    return RequestRecord("req_9", "messages", "anthropic", 200, model="claude-m1", account="acct-a",
                         input_tokens=10, output_tokens=7, cache_read_tokens=100, cache_write_5m_tokens=5,
                         cost_micro=12, total_seconds=0.3, upstream_seconds=0.29)


def one_request(tracing: Tracing) -> dict[str, str]:
    """The spans a request makes, in the order the pipeline would make them; the upstream headers."""
    span = tracing.start_request("messages", "claude-m1", max_tokens=1024)
    asyncio.run(tracing.step(span, "admission", asyncio.sleep(0)))
    assert tracing.call(span, "routing", max, 1, 2) == 2
    upstream = tracing.start_upstream(span, "acct-a", "claude-m1")
    headers = tracing.traceparent(upstream)
    tracing.end_upstream(upstream, 200, response_model="claude-m1-20250101")
    asyncio.run(tracing.step(span, "settlement", asyncio.sleep(0)))
    tracing.end_request(span, a_record(), response_model="claude-m1-20250101")
    return headers


def test_disabled_costs_nothing_and_sends_no_header() -> None:
    tracing = Tracing(None)
    assert not tracing.enabled
    assert one_request(tracing) == {}


def test_spans_with_genai_attributes_and_traceparent_upstream() -> None:
    exporter = InMemorySpanExporter()
    headers = one_request(Tracing(exporter, processor=SimpleSpanProcessor))
    finished = exporter.get_finished_spans()
    root = next(span for span in finished if span.parent is None)
    children = [span for span in finished if span.parent is not None]
    assert len(children) == 4 and all(span.parent.span_id == root.context.span_id for span in children)
    assert {span.name for span in children} == {"ccgate.admission", "ccgate.routing", "ccgate.settlement",
                                                "chat claude-m1"}
    attributes = root.attributes
    assert attributes["gen_ai.provider.name"] == "anthropic" and attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "claude-m1"
    assert attributes["gen_ai.response.model"] == "claude-m1-20250101"
    assert attributes["gen_ai.usage.input_tokens"] == 115  # input + cache read + cache write
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.request.max_tokens"] == 1024
    upstream = next(span for span in children if span.name == "chat claude-m1")
    version, trace_id, span_id, _ = headers["traceparent"].split("-")
    assert version == "00" and int(trace_id, 16) == root.context.trace_id
    assert int(span_id, 16) == upstream.context.span_id


def test_a_request_the_sampler_leaves_out_makes_no_span_but_still_carries_its_context() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, sampler=ALWAYS_OFF, processor=SimpleSpanProcessor)
    span = tracing.start_request("messages", "m")
    work = asyncio.sleep(0)
    assert tracing.step(span, "admission", work) is work  # nothing added around an unsampled step
    asyncio.run(work)
    headers = one_request(tracing)
    assert exporter.get_finished_spans() == ()
    assert int(headers["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0  # upstream learns the trace, not sampled


def test_a_client_traceparent_becomes_the_parent() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, processor=SimpleSpanProcessor)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    span = tracing.start_request("messages", "m", carrier={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    tracing.end_request(span, a_record())
    assert exporter.get_finished_spans()[0].context.trace_id == int(trace_id, 16)


def sampled_tracing(head: HeadSampling) -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Tracing(exporter, sampler=sdk_sampler(head), head=head, processor=SimpleSpanProcessor), exporter


def client_context(sampled: bool) -> dict[str, str]:
    return {"traceparent": f"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{'01' if sampled else '00'}"}


def test_a_request_the_ratio_leaves_out_is_not_traced_and_asks_nothing_of_the_sdk() -> None:
    class Refusing:
        def should_sample(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the SDK's sampler was asked")

        def export(self, *args: object) -> None:
            raise AssertionError("a span was exported")

    tracing = Tracing(Refusing(), sampler=Refusing(), head=HeadSampling(0.0, parent_based=True),
                      processor=SimpleSpanProcessor)
    assert one_request(tracing) == {}  # no span, no traceparent upstream


def test_the_ratio_decides_the_share_of_requests_traced() -> None:
    tracing, exporter = sampled_tracing(HeadSampling(0.25, parent_based=True))
    traced = sum(tracing.start_request("messages", "m") is not None for _ in range(2000))
    assert 400 <= traced <= 600  # 500 expected; outside this, 1 chance in ~10^8
    assert sum("traceparent" in one_request(tracing) for _ in range(400)) in range(60, 141)
    assert {span.name for span in exporter.get_finished_spans()} >= {"chat claude-m1", "ccgate.admission"}


@pytest.mark.parametrize("parent_based", [True, False])
def test_a_client_traceparent_decides_only_under_a_parent_based_sampler(parent_based: bool) -> None:
    tracing, exporter = sampled_tracing(HeadSampling(0.0, parent_based=parent_based))
    span = tracing.start_request("messages", "m", carrier=client_context(sampled=True))
    assert (span is not None and span.sampled) is parent_based
    span = tracing.start_request("messages", "m", carrier=client_context(sampled=False))
    assert span is None or not span.sampled


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"OTEL_TRACES_SAMPLER": "always_on"}, None),
    ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.05"}, HeadSampling(0.05, True)),
    ({"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0"}, HeadSampling(0.0, False)),
    ({"OTEL_TRACES_SAMPLER": "traceidratio"}, HeadSampling(1.0, False)),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"}, HeadSampling(1.0, False)),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "7"}, HeadSampling(1.0, False)),
])
def test_the_ratio_samplers_are_read_as_the_sdk_reads_them(environ: dict[str, str], expected: object) -> None:
    assert head_sampling(environ) == expected


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
])
def test_opt_in_through_the_standard_variables(environ: dict[str, str], expected: bool) -> None:
    assert tracing_requested(environ) is expected


def test_spans_arrive_at_an_otlp_http_receiver(otlp_receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert tracing_requested()
    tracing = Tracing.from_env("ccgate-test")
    one_request(tracing)
    assert tracing.force_flush(10_000)
    tracing.shutdown()
    spans = [span for request in received for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    assert len(spans) == 5
    root = next(span for span in spans if not span.parent_span_id)
    attributes = {item.key: item.value for item in root.attributes}
    assert root.name == "chat claude-m1"
    assert attributes["gen_ai.provider.name"].string_value == "anthropic"
    assert attributes["gen_ai.usage.output_tokens"].int_value == 7
    service = {item.key: item.value.string_value for item in received[0].resource_spans[0].resource.attributes}
    assert service["service.name"] == "ccgate-test"


def test_the_request_path_hands_over_one_record_and_the_spans_are_made_in_the_batch() -> None:
    handed: list[object] = []

    class Holding:
        """A span processor that only keeps what it is given."""

        def __init__(self, exporter: object) -> None:
            self.exporter = exporter

        def on_end(self, item: object) -> None:
            handed.append(item)

    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, processor=Holding)
    one_request(tracing)
    assert len(handed) == 1 and exporter.get_finished_spans() == ()  # no span made on the request path
    tracing.processor.exporter.export(handed)  # the processor's batch
    assert sorted(span.name for span in exporter.get_finished_spans()) == [
        "ccgate.admission", "ccgate.routing", "ccgate.settlement", "chat claude-m1", "chat claude-m1"]
