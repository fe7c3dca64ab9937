"""OTLP/HTTP export of finished requests, their spans written straight to protobuf's wire format.

The SDK's encoder builds a protobuf object for every span, attribute and value, and hashes each span's
resource through `json.dumps`: about 40 µs a span, after the spans themselves were made as objects.
`encode_requests` writes the same bytes from ccgate's own record of each request (`FinishedRequest`),
with no span object made; a test checks them against the SDK's, byte for byte, on generated requests.
Sending (endpoint, headers, compression, retries: the OTEL_EXPORTER_OTLP_* variables) stays the SDK
exporter's.  Should a request hold what is not written here (an integer outside int64), or the SDK's
sending client ever move, the batch's spans are made and the SDK exporter takes them as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from ccgate.obs.spans import (
    FinishedRequest,
    SpanMaker,
    SpanMakingExporter,
    request_attributes,
    request_error,
    upstream_attributes,
)

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_INTERNAL, _SERVER, _CLIENT = b"\x30\x01", b"\x30\x02", b"\x30\x03"  # Span.kind: SPAN_KIND_* in trace.proto
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # Span.flags (SpanFlags in trace.proto)
_INT64 = range(-(1 << 63), 1 << 63)


class Unencodable(Exception):
    """A value outside what is written here; the SDK's encoder takes the batch."""


_ONE_BYTE = [bytes((number,)) for number in range(0x80)]


def _varint(number: int) -> bytes:
    if number < 0x80:
        return _ONE_BYTE[number]
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    size = len(payload)
    return tag + (_ONE_BYTE[size] if size < 0x80 else _varint(size)) + payload


def _any_value(value: Any) -> bytes:
    """An AnyValue message; its checks go in the SDK encoder's order (a bool is an int too)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _delimited(b"\x0a", value.encode())
    if isinstance(value, int):
        if value not in _INT64:
            raise Unencodable("an integer outside int64")
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    raise Unencodable(f"an attribute of type {type(value).__name__}")


_keys: dict[str, bytes] = {}  # an attribute's key, encoded: KeyValue's field 1


def _attributes(tag: bytes, attributes: Any) -> bytes:
    """Repeated KeyValue fields under `tag`."""
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        encoded_key = _keys.get(key)
        if encoded_key is None:
            encoded_key = _delimited(b"\x0a", key.encode())
            if len(_keys) < 1024:  # the keys are the code's own few; never let the cache grow unbounded
                _keys[key] = encoded_key
        parts.append(_delimited(tag, encoded_key + _delimited(b"\x12", _any_value(value))))
    return b"".join(parts)


def _span(trace_id: bytes, span_id: int, trace_state: bytes, parent_id: int | None, name: str, kind: bytes,
          start: int, end: int, attributes: dict[str, Any] | None, error: str | None, flags: int) -> bytes:
    """One Span message, as a ScopeSpans' field 2, its fields in number order."""
    parts = [trace_id, b"\x12\x08", span_id.to_bytes(8, "big"), trace_state]
    if parent_id is not None:
        parts += (b"\x22\x08", parent_id.to_bytes(8, "big"))
    if name:
        parts.append(_delimited(b"\x2a", name.encode()))
    parts += (kind, b"\x39", _fixed64(start), b"\x41", _fixed64(end), _attributes(b"\x4a", attributes))
    if error is None:
        parts.append(b"\x7a\x00")  # an unset status: present, empty
    else:  # STATUS_CODE_ERROR, with its message if any
        parts.append(_delimited(b"\x7a", (_delimited(b"\x12", error.encode()) if error else b"") + b"\x18\x02"))
    parts += (b"\x85\x01", _fixed32(flags))
    return _delimited(b"\x12", b"".join(parts))


def _request(finished: FinishedRequest) -> bytes:
    """The spans of one finished request, as `SpanMaker.make` makes them: its own, then its steps'."""
    trace, record = finished.trace, finished.record
    trace_id = b"\x0a\x10" + trace.trace_id.to_bytes(16, "big")
    parent, trace_state = trace.parent, b""
    if parent is not None and parent.trace_state:
        trace_state = _delimited(b"\x1a", parent.trace_state.to_header().encode())
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    spans = [_span(trace_id, trace.span_id, trace_state, parent.span_id if parent is not None else None,
                   trace.name, _SERVER, trace.start, finished.end,
                   request_attributes(trace, record, finished.response_model), request_error(record), flags)]
    for step in trace.steps:
        call = step.call
        attributes = None if call is None else upstream_attributes(call, step.status, step.cause, step.response_model)
        spans.append(_span(trace_id, step.span_id, trace_state, trace.span_id, step.name,
                           _INTERNAL if call is None else _CLIENT, step.start, step.end, attributes, step.cause,
                           _HAS_IS_REMOTE))
    return b"".join(spans)


def encode_requests(batch: Sequence[FinishedRequest], resource: Any, scope: Any) -> bytes | None:
    """The ExportTraceServiceRequest of the batch's spans, as the SDK's encoder would write those
    `SpanMaker.make` makes, all of `resource` and `scope`; None should a value not be written here."""
    try:
        spans = b"".join(map(_request, batch))
        scope_message = ((_delimited(b"\x0a", scope.name.encode()) if scope.name else b"")
                         + (_delimited(b"\x12", scope.version.encode()) if scope.version else b"")
                         + _attributes(b"\x1a", scope.attributes))
        scope_spans = _delimited(b"\x0a", scope_message) + spans
        if scope.schema_url:
            scope_spans += _delimited(b"\x1a", scope.schema_url.encode())
        resource_spans = _delimited(b"\x0a", _attributes(b"\x0a", resource.attributes))
        resource_spans += _delimited(b"\x12", scope_spans)
        if resource.schema_url:
            resource_spans += _delimited(b"\x1a", resource.schema_url.encode())
    except Unencodable:
        return None
    return _delimited(b"\x0a", resource_spans)


class OTLPRequestExporter(SpanMakingExporter):
    """Exports finished requests through the SDK's OTLP/HTTP exporter: the body written by
    `encode_requests`, sent by the exporter's own client; otherwise, spans made and exported the SDK's way."""

    exporter: OTLPSpanExporter

    def export(self, batch: Sequence[FinishedRequest]) -> Any:
        client = getattr(self.exporter, "_client", None)
        if client is None or (body := encode_requests(batch, self.maker.resource, self.maker.scope)) is None:
            return super().export(batch)
        return SpanExportResult.SUCCESS if client.export(body).success else SpanExportResult.FAILURE


def request_exporter(exporter: Any, maker: SpanMaker) -> SpanMakingExporter:
    """What the span processor hands its batches of finished requests to, for `exporter`."""
    if isinstance(exporter, OTLPSpanExporter):
        return OTLPRequestExporter(exporter, maker)
    return SpanMakingExporter(exporter, maker)
