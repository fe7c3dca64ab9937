"""OpenTelemetry traces, opt-in through the standard OTEL_* environment variables.

Enabled when OTEL_TRACES_EXPORTER (other than "none") or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set
and OTEL_SDK_DISABLED is not true. A request is one span named "{operation} {model}" (GenAI
semantic conventions, provider "anthropic") with children for admission, routing, the upstream call
and settlement; the upstream call carries `traceparent` upstream. Disabled, every call here returns
None or a shared no-op context at the cost of one attribute test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

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


def provider_from_env(service_name: str = "ccgate") -> Any:
    """A TracerProvider exporting in batches to what OTEL_TRACES_EXPORTER names (OTLP over HTTP by default)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider




class Tracing:
    """Starts and ends the spans of requests; `enabled` is False when no provider was given."""

    def __init__(self, provider: Any = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("ccgate") if provider is not None else None
        if self.enabled:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            self._trace = trace
            self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def from_env(cls) -> Tracing:
        return cls(provider_from_env() if tracing_requested() else None)

    def start_request(self, route: str, model: str, *, stream: bool = False, max_tokens: int = 0,
                      request_id: str = "", carrier: dict[str, str] | None = None) -> Any:
        """The request's span (None when disabled); `carrier` holds a client's own traceparent, if any."""
        if self._tracer is None:
            return None
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
