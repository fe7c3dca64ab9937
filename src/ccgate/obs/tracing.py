"""OpenTelemetry traces, opt-in through the standard OTEL_* environment variables.

Enabled when OTEL_TRACES_EXPORTER (other than "none") or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set
and OTEL_SDK_DISABLED is not true. A request is one span named "{operation} {model}" (GenAI
semantic conventions, provider "anthropic") with children for admission, routing, the upstream call
and settlement; the upstream call carries `traceparent` upstream. Disabled, every call here returns
None or a shared no-op context at the cost of one attribute test.

With a ratio sampler (OTEL_TRACES_SAMPLER=traceidratio or parentbased_traceidratio), ccgate makes the
ratio's draw itself before it asks the SDK for anything: a request left out is not traced at all (no
span, no `traceparent` upstream) and costs one random number, where the SDK's non-recording span and
its context cost about 6% of a request's CPU.  The SDK then records every request drawn in (or, parent-based,
follows a client's own `traceparent`), so the share traced is the ratio, as the standard samplers do.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from ccgate.obs.record import RequestRecord

T = TypeVar("T")

PROVIDER = "anthropic"
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


def provider_from_env(service_name: str = "ccgate", head: HeadSampling | None = None) -> Any:
    """A TracerProvider exporting in batches to what OTEL_TRACES_EXPORTER names (OTLP over HTTP by default).
    With `head` sampling, it records every request ccgate drew in (parent-based: as a client's
    `traceparent` says)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    provider = TracerProvider(sampler=sdk_sampler(head), resource=Resource.create({"service.name": service_name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """Starts and ends the spans of requests; `enabled` is False when no provider was given.  With
    `head` sampling, a request is drawn here before the provider sees it (see the module's docstring)."""

    def __init__(self, provider: Any = None, head: HeadSampling | None = None) -> None:
        self.provider = provider
        self.share, self.parent_based = head if head is not None else (1.0, True)
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("ccgate") if provider is not None else None
        if self.enabled:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            self._trace = trace
            self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls) -> Tracing:
        if not tracing_requested():
            return cls(None)
        head = head_sampling()
        return cls(provider_from_env(head=head), head)

    def start_request(self, route: str, model: str, *, stream: bool = False, max_tokens: int = 0,
                      request_id: str = "", carrier: dict[str, str] | None = None) -> Any:
        """The request's span (None when disabled); `carrier` holds a client's own traceparent, if any."""
        if self._tracer is None:
            return None
        if self.share < 1.0 and (carrier is None or not self.parent_based) and random.random() >= self.share:
            return None  # drawn out: not traced at all
        operation = OPERATIONS.get(route, route)
        parent = self._propagator.extract(carrier) if carrier else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": PROVIDER, "gen_ai.system": PROVIDER,
            "gen_ai.request.model": model, "ccgate.request_id": request_id, "ccgate.stream": stream}
        if max_tokens:
            attributes["gen_ai.request.max_tokens"] = max_tokens
        return self._tracer.start_span(f"{operation} {model}".strip(), context=parent,
                                       kind=self._trace.SpanKind.SERVER, attributes=attributes)

    @contextlib.contextmanager
    def _child(self, parent: Any, name: str) -> Iterator[Any]:
        assert self._tracer is not None
        span = self._tracer.start_span(name, context=self._trace.set_span_in_context(parent))
        try:
            yield span
        finally:
            span.end()

    def step(self, parent: Any, name: str, work: Awaitable[T]) -> Awaitable[T]:
        """`work` inside a child span of the request, for a step that is one await (admission,
        settlement); `work` itself, adding nothing, for a request that is not traced or not sampled."""
        if parent is None or not parent.is_recording():
            return work
        return self._traced(parent, f"ccgate.{name}", work)

    async def _traced(self, parent: Any, name: str, work: Awaitable[T]) -> T:
        with self._child(parent, name):
            return await work

    def call(self, parent: Any, name: str, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` inside a child span of the request (routing); a plain call when the
        request is not traced or not sampled."""
        if parent is None or not parent.is_recording():
            return function(*args)
        with self._child(parent, f"ccgate.{name}"):
            return function(*args)

    def start_upstream(self, parent: Any, account: str, model: str) -> Any:
        """The span of one upstream call (a CLIENT span, ended by `end_upstream`); None when disabled.
        A request the sampler left out gets no span of its own: its unsampled context goes upstream."""
        if parent is None or self._tracer is None:
            return None
        if not parent.is_recording():
            return parent
        return self._tracer.start_span(
            f"chat {model}", context=self._trace.set_span_in_context(parent), kind=self._trace.SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": PROVIDER,
                        "gen_ai.system": PROVIDER, "gen_ai.request.model": model, "ccgate.account": account})

    def traceparent(self, span: Any) -> dict[str, str]:
        """Headers that carry `span`'s context upstream (`traceparent`, maybe `tracestate`); {} when off."""
        if span is None:
            return {}
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return carrier

    def end_upstream(self, span: Any, status: int | None, cause: str | None = None,
                     response_model: str | None = None) -> None:
        if span is None or not span.is_recording():
            return
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if response_model:
            span.set_attribute("gen_ai.response.model", response_model)
        if cause is not None:
            span.set_attribute("error.type", cause)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, cause))
        span.end()

    def end_request(self, span: Any, record: RequestRecord, response_model: str | None = None) -> None:
        """Close the request's span with what it used (usage attributes per the GenAI conventions)."""
        if span is None or not span.is_recording():
            return
        span.set_attributes({
            "gen_ai.response.model": response_model or record.model,
            "gen_ai.usage.input_tokens": record.input_tokens + record.cache_read_tokens
            + record.cache_write_5m_tokens + record.cache_write_1h_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": record.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": record.cache_write_5m_tokens + record.cache_write_1h_tokens,
            "http.response.status_code": record.status, "ccgate.cost_micro": record.cost_micro,
            "ccgate.added_ms": round(record.added_seconds * 1000, 3)})
        if record.account:
            span.set_attribute("ccgate.account", record.account)
        if record.cache:
            span.set_attribute("ccgate.cache", record.cache)
        if record.status >= 400 or record.error_type:
            span.set_attribute("error.type", record.error_type or str(record.status))
            if record.status >= 500 or record.error_type:
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, record.error_type or ""))
        span.end()

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
