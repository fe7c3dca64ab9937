"""A traced request as it is recorded (plain ids and clock readings) and the SDK spans it becomes.

Nothing here runs unless traces are on; the OpenTelemetry SDK is imported only by a `SpanMaker`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from ccgate.obs.record import RequestRecord

PROVIDER = "anthropic"


class UpstreamCall(NamedTuple):
    """An upstream call under way: its trace, its own span id (sent upstream) and its start."""

    trace: RequestTrace
    span_id: int
    start: int
    account: str
    model: str


class Step(NamedTuple):
    """A finished child span, as recorded: its name, clock readings (ns since the epoch) and span id; for
    an upstream call, the call and how it ended (its attributes are made with its span)."""

    name: str
    start: int
    end: int
    span_id: int
    call: UpstreamCall | None = None
    status: int | None = None
    cause: str | None = None
    response_model: str | None = None


class RequestTrace:
    """One request's trace while it runs: its ids, its client's parent, when it began, its steps."""

    __slots__ = ("trace_id", "span_id", "parent", "sampled", "start", "operation", "model", "max_tokens", "steps")

    def __init__(self, trace_id: int, span_id: int, parent: Any, sampled: bool, operation: str, model: str,
                 max_tokens: int, start: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent = parent  # the client's SpanContext, or None
        self.sampled = sampled  # False: not recorded, but its context still goes upstream
        self.start = start  # ns since the epoch
        self.operation = operation
        self.model = model
        self.max_tokens = max_tokens
        self.steps: list[Step] = []

    @property
    def name(self) -> str:
        """The request span's name: "{operation} {model}" (GenAI semantic conventions)."""
        return span_name(self.operation, self.model)


def span_name(operation: str, model: str) -> str:
    return f"{operation} {model}".strip()


class FinishedRequest(NamedTuple):
    """A traced request at its end, queued by the span processor as it is; `SpanMakingExporter` makes
    its spans in the processor's batch, off the request path.  `context` is all a processor reads."""

    trace: RequestTrace
    record: RequestRecord
    end: int
    response_model: str | None
    context: Any  # a sampled SpanContext


def request_attributes(trace: RequestTrace, record: RequestRecord, response_model: str | None) -> dict[str, Any]:
    """The request span's attributes: the GenAI semantic conventions', and ccgate's own."""
    cache_writes = record.cache_write_5m_tokens + record.cache_write_1h_tokens
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": trace.operation, "gen_ai.provider.name": PROVIDER, "gen_ai.system": PROVIDER,
        "gen_ai.request.model": trace.model, "gen_ai.response.model": response_model or record.model,
        "gen_ai.usage.input_tokens": record.input_tokens + record.cache_read_tokens + cache_writes,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": cache_writes,
        "http.response.status_code": record.status, "ccgate.request_id": record.request_id,
        "ccgate.stream": record.stream, "ccgate.cost_micro": record.cost_micro,
        "ccgate.added_ms": round(record.added_seconds * 1000, 3)}
    if trace.max_tokens:
        attributes["gen_ai.request.max_tokens"] = trace.max_tokens
    if record.account:
        attributes["ccgate.account"] = record.account
    if record.cache:
        attributes["ccgate.cache"] = record.cache
    if record.status >= 400 or record.error_type:
        attributes["error.type"] = record.error_type or str(record.status)
    return attributes


def request_error(record: RequestRecord) -> str | None:
    """The request span's error status description, or None for a request that did not fail."""
    if record.status >= 500 or record.error_type:
        return record.error_type or ""
    return None


def upstream_attributes(call: UpstreamCall, status: int | None, cause: str | None,
                        response_model: str | None) -> dict[str, Any]:
    """An upstream call's attributes (GenAI conventions, a CLIENT span)."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER, "gen_ai.system": PROVIDER,
        "gen_ai.request.model": call.model, "ccgate.account": call.account}
    if status is not None:
        attributes["http.response.status_code"] = status
    if response_model:
        attributes["gen_ai.response.model"] = response_model
    if cause is not None:
        attributes["error.type"] = cause
    return attributes


class SpanMaker:
    """Begins a request's trace as the sampler decides, and makes the SDK's spans of a finished one."""

    def __init__(self, sampler: Any = None, resource: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.sampler = sampler if sampler is not None else ParentBased(ALWAYS_ON)  # the SDK's default
        self.resource = resource if resource is not None else Resource.create({})
        self.scope = InstrumentationScope("ccgate")
        self._trace = trace
        self._span = ReadableSpan
        self._propagator = TraceContextTextMapPropagator()
        self._no_parent = Context()
        self._sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self.sampled_context = trace.SpanContext(1, 1, False, self._sampled)  # a FinishedRequest's `context`
        self._error = trace.StatusCode.ERROR
        self._unset = trace.Status()

    def begin(self, operation: str, model: str, max_tokens: int, carrier: dict[str, str] | None) -> RequestTrace:
        """A request's trace: the client's own (from `carrier`'s traceparent) or a new one, sampled or not."""
        # No ambient context: the request's only possible parent is its client's.
        context = self._propagator.extract(carrier, self._no_parent) if carrier else self._no_parent
        parent: Any = self._trace.get_current_span(context).get_span_context()
        if not parent.is_valid:
            parent = None
        trace_id = parent.trace_id if parent is not None else random.getrandbits(128) or 1
        decision = self.sampler.should_sample(context, trace_id, span_name(operation, model),
                                              self._trace.SpanKind.SERVER).decision
        return RequestTrace(trace_id, random.getrandbits(64) or 1, parent, decision.is_sampled(), operation, model,
                            max_tokens, time.time_ns())

    def make(self, finished: FinishedRequest) -> list[Any]:
        """The finished request's spans: its own, then one per step, all ended."""
        trace, record, end, response_model = finished.trace, finished.record, finished.end, finished.response_model
        span_context, kind = self._trace.SpanContext, self._trace.SpanKind
        trace_id, trace_state = trace.trace_id, trace.parent.trace_state if trace.parent is not None else None
        root = span_context(trace_id, trace.span_id, False, self._sampled, trace_state)
        error = request_error(record)
        status = self._unset if error is None else self._trace.Status(self._error, error)
        spans = [self._span(
            trace.name, root, trace.parent, self.resource, request_attributes(trace, record, response_model),
            kind=kind.SERVER, status=status,
            start_time=trace.start, end_time=end, instrumentation_scope=self.scope)]
        for step in trace.steps:
            call = step.call
            attributes = None if call is None else upstream_attributes(call, step.status, step.cause,
                                                                       step.response_model)
            spans.append(self._span(
                step.name, span_context(trace_id, step.span_id, False, self._sampled, trace_state), root, self.resource,
                attributes, kind=kind.INTERNAL if call is None else kind.CLIENT,
                status=self._unset if step.cause is None else self._trace.Status(self._error, step.cause),
                start_time=step.start, end_time=step.end, instrumentation_scope=self.scope))
        return spans


class SpanMakingExporter:
    """A SpanExporter of FinishedRequests: makes the spans of a batch of them and hands those to `exporter`."""

    def __init__(self, exporter: Any, maker: SpanMaker) -> None:
        self.exporter = exporter
        self.maker = maker

    def export(self, batch: Sequence[FinishedRequest]) -> Any:
        return self.exporter.export([span for finished in batch for span in self.maker.make(finished)])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))
