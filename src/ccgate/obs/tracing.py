"""OpenTelemetry traces, opt-in through the standard OTEL_* environment variables.

Enabled when OTEL_TRACES_EXPORTER (other than "none") or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set
and OTEL_SDK_DISABLED is not true. A request is one span named "{operation} {model}" (GenAI
semantic conventions, provider "anthropic") with children for admission, routing, the upstream call
and settlement; the upstream call carries `traceparent` upstream. Disabled, every call here returns
None or its work untouched at the cost of one test.

A traced request is recorded as plain numbers while it runs (a `RequestTrace`: ids, a clock reading
at each step's start and end) and goes to the span processor as one `FinishedRequest` when it ends;
the processor's export thread makes its spans, or over OTLP writes them straight to the wire
(`ccgate.obs.otlp`).  The SDK's own live spans cost about 60 µs each to start and end (contexts,
bounded attributes, locks), on the request path.
The OTEL_TRACES_SAMPLER the SDK reads still decides, asked once per request.

With a ratio sampler (traceidratio or parentbased_traceidratio), ccgate makes the ratio's draw
itself first: a request left out is not traced at all (no `traceparent` upstream) and costs one
random number.  The SDK's sampler then takes every request drawn in (or, parent-based, follows a
client's own `traceparent`), so the share traced is the ratio, as the standard samplers do.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from ccgate.obs.record import RequestRecord
from ccgate.obs.spans import (
    FinishedRequest,
    RequestTrace,
    SpanMaker,
    Step,
    UpstreamCall,
)

T = TypeVar("T")

OPERATIONS = {"messages": "chat", "chat_completions": "chat", "count_tokens": "count_tokens"}


def tracing_requested(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the OTEL_* environment asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class HeadSampling(NamedTuple):
    """A ratio sampler, drawn by ccgate: the share of requests traced, and whether a client's own
    `traceparent` decides instead (parentbased_traceidratio) or is drawn like the rest (traceidratio)."""

    share: float
    parent_based: bool


def head_sampling(environ: dict[str, str] | os._Environ[str] = os.environ) -> HeadSampling | None:
    """The ratio sampler OTEL_TRACES_SAMPLER names, with OTEL_TRACES_SAMPLER_ARG as its share (1.0 when
    missing or not a number in [0, 1], as the SDK reads it); None for any other sampler, which the SDK
    applies itself."""
    name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if name not in ("traceidratio", "parentbased_traceidratio"):
        return None
    try:
        share = float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    except ValueError:
        share = 1.0
    return HeadSampling(share if 0.0 <= share <= 1.0 else 1.0, name == "parentbased_traceidratio")


def sdk_sampler(head: HeadSampling | None) -> Any:
    """The SDK's sampler behind ccgate's draw: every request drawn in, or as its client's parent says;
    None (the SDK reads OTEL_TRACES_SAMPLER itself) without head sampling."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    if head is None:
        return None
    return ParentBased(ALWAYS_ON) if head.parent_based else ALWAYS_ON


def exporter_from_env() -> Any:
    """The span exporter OTEL_TRACES_EXPORTER names: OTLP over HTTP by default, or the console."""
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class Tracing:
    """Records the spans of requests; `enabled` is False without an exporter.  A finished request goes
    to the span `processor` (the SDK's batching one by default) and is made into spans in its batch.
    With `head` sampling, a request is drawn here before the sampler sees it (see the module's docstring)."""

    def __init__(self, exporter: Any = None, *, sampler: Any = None, resource: Any = None,
                 head: HeadSampling | None = None, processor: Callable[[Any], Any] | None = None) -> None:
        self.share, self.parent_based = head if head is not None else (1.0, True)
        self._spans: SpanMaker | None = None
        self.processor: Any = None
        if exporter is not None:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            self._spans = SpanMaker(sampler, resource)
            from ccgate.obs.otlp import request_exporter

            make_processor: Callable[[Any], Any] = processor or BatchSpanProcessor
            self.processor = make_processor(request_exporter(exporter, self._spans))

    @property
    def enabled(self) -> bool:
        return self.processor is not None

    @classmethod
    def from_env(cls, service_name: str = "ccgate") -> Tracing:
        if not tracing_requested():
            return cls(None)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        head = head_sampling()
        # The provider reads OTEL_TRACES_SAMPLER and OTEL_RESOURCE_ATTRIBUTES as the SDK does.
        provider = TracerProvider(sampler=sdk_sampler(head), resource=Resource.create({"service.name": service_name}))
        return cls(exporter_from_env(), sampler=provider.sampler, resource=provider.resource, head=head)

    def start_request(self, route: str, model: str, *, max_tokens: int = 0,
                      carrier: dict[str, str] | None = None) -> RequestTrace | None:
        """The request's trace (None when disabled or drawn out); `carrier` holds a client's own
        traceparent, if any."""
        if self._spans is None:
            return None
        if self.share < 1.0 and (carrier is None or not self.parent_based) and random.random() >= self.share:
            return None  # drawn out: not traced at all
        return self._spans.begin(OPERATIONS.get(route, route), model, max_tokens, carrier)

    def step(self, trace: RequestTrace | None, name: str, work: Awaitable[T]) -> Awaitable[T]:
        """`work` timed as a child span of the request, for a step that is one await (admission,
        settlement); `work` itself, adding nothing, for a request that is not traced or not sampled."""
        if trace is None or not trace.sampled:
            return work
        return self._timed(trace, f"ccgate.{name}", work)

    @staticmethod
    async def _timed(trace: RequestTrace, name: str, work: Awaitable[T]) -> T:
        start = time.time_ns()
        try:
            return await work
        finally:
            trace.steps.append(Step(name, start, time.time_ns(), random.getrandbits(64) or 1))

    def call(self, trace: RequestTrace | None, name: str, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` timed as a child span of the request (routing); a plain call when the
        request is not traced or not sampled."""
        if trace is None or not trace.sampled:
            return function(*args)
        start = time.time_ns()
        try:
            return function(*args)
        finally:
            trace.steps.append(Step(f"ccgate.{name}", start, time.time_ns(), random.getrandbits(64) or 1))

    @staticmethod
    def start_upstream(trace: RequestTrace | None, account: str, model: str) -> UpstreamCall | None:
        """One upstream call (a CLIENT span, ended by `end_upstream`); None when not traced.  A request
        the sampler left out gets no span of its own: its unsampled context goes upstream."""
        if trace is None:
            return None
        span_id = (random.getrandbits(64) or 1) if trace.sampled else trace.span_id
        return UpstreamCall(trace, span_id, time.time_ns(), account, model)

    @staticmethod
    def traceparent(call: UpstreamCall | None) -> dict[str, str]:
        """The W3C headers that carry the call's context upstream (`traceparent`, and the client's
        `tracestate` if it sent one); {} when not traced."""
        if call is None:
            return {}
        trace = call.trace
        headers = {"traceparent": f"00-{trace.trace_id:032x}-{call.span_id:016x}-{'01' if trace.sampled else '00'}"}
        if trace.parent is not None and trace.parent.trace_state:
            headers["tracestate"] = trace.parent.trace_state.to_header()
        return headers

    @staticmethod
    def end_upstream(call: UpstreamCall | None, status: int | None, cause: str | None = None,
                     response_model: str | None = None) -> None:
        if call is None or not call.trace.sampled:
            return
        call.trace.steps.append(Step(f"chat {call.model}", call.start, time.time_ns(), call.span_id, call, status,
                                     cause, response_model))

    def end_request(self, trace: RequestTrace | None, record: RequestRecord, response_model: str | None = None) -> None:
        """The request is over: its spans go to the processor (usage attributes per the GenAI conventions)."""
        if trace is None or not trace.sampled or self._spans is None:
            return
        finished = FinishedRequest(trace, record, time.time_ns(), response_model, self._spans.sampled_context)
        self.processor.on_end(finished)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.processor is None or bool(self.processor.force_flush(timeout_millis))

    def shutdown(self) -> None:
        if self.processor is not None:
            self.processor.shutdown()
