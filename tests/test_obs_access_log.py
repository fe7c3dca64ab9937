"""The access log: one line per request, the fields an operator greps for, and never a secret."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from ccgate.obs.access_log import AccessLog, AccessLogSettings, Clock, JsonFormatter, configure_logging, format_line
from ccgate.obs.record import RequestRecord, UpstreamAttempt

SECRET_KEY = "cc_user_" + "S" * 40
PROMPT = "the secret plans for tomorrow"


def a_record(number: int, status: int = 200) -> RequestRecord:
    return RequestRecord(f"req_{number}", "messages", "anthropic", status, model="claude-m1", key_id="k_abc",
                         user_id=3, session_id="sess-1", account="acct-a", input_tokens=10, output_tokens=5,
                         cost_micro=77, cache="MISS", total_seconds=0.2, upstream_seconds=0.199,
                         attempts=(UpstreamAttempt("acct-a"),))


def test_one_json_line_per_request_with_the_fields(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(AccessLogSettings(target=str(path)))
    log.start()
    for number in range(50):
        log.write(a_record(number, 200 if number % 5 else 502))
    log.stop()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 50
    entries = [orjson.loads(line) for line in lines]
    assert [entry["request_id"] for entry in entries] == [f"req_{n}" for n in range(50)]
    first = entries[1]
    for name in ("key_id", "user_id", "dialect", "model", "account", "status", "error_type", "input_tokens",
                 "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                 "cost_micro", "cache", "added_ms", "upstream_ms", "session_id"):
        assert name in first
    assert first["added_ms"] == 1.0 and first["cost_micro"] == 77 and entries[0]["status"] == 502


def test_timestamps_are_utc_to_the_millisecond() -> None:
    clock = Clock()
    for _ in range(3):
        before = datetime.now(UTC)
        stamp = datetime.fromisoformat(clock.now())
        after = datetime.now(UTC)
        assert stamp.utcoffset() == timedelta(0)
        assert before - timedelta(milliseconds=1) <= stamp <= after
        assert stamp.microsecond % 1000 == 0
        time.sleep(0.6)  # across a second's boundary, where the date and time of day are made anew


def test_a_record_cannot_carry_a_key_a_prompt_or_a_completion() -> None:
    """Invariant 10: the record has no field for them, so no line can hold them."""
    names = {field.name for field in dataclasses.fields(RequestRecord)}
    assert not names & {"api_key", "key", "authorization", "body", "prompt", "messages", "completion", "content",
                        "headers", "credential"}
    line = format_line(a_record(1), "json") + format_line(a_record(1), "text")
    assert SECRET_KEY.encode() not in line and PROMPT.encode() not in line


def test_text_format_and_errors_only_at_warning(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(AccessLogSettings(target=str(path), fmt="text", level="WARNING"))
    log.start()
    log.write(a_record(1, 200))
    log.write(a_record(2, 429))
    log.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and "request_id=req_2" in lines[0] and "status=429" in lines[0]


def test_off_writes_nothing_and_starts_no_thread(tmp_path: Path) -> None:
    log = AccessLog(AccessLogSettings(target="off"))
    log.start()
    log.write(a_record(1))
    assert log._thread is None and not log.enabled


def test_application_log_in_json(capsys) -> None:
    configure_logging("json", "INFO")
    try:
        logging.getLogger("ccgate.test").info("hello %s", "there")
        logging.getLogger("ccgate.test").debug("not shown")
    finally:
        logging.getLogger("ccgate").handlers.clear()
        logging.getLogger("ccgate").propagate = True
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = orjson.loads(lines[0])
    assert entry["message"] == "hello there" and entry["level"] == "INFO" and entry["logger"] == "ccgate.test"
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)


async def test_the_observer_counts_logs_and_costs_little(tmp_path: Path) -> None:
    """One call per finished request: the metrics move, one line is logged; µs per call printed."""
    import time

    from ccgate.obs import metrics
    from ccgate.obs.observer import Observer
    from ccgate.obs.tracing import Tracing

    path = tmp_path / "access.log"
    observer = Observer(AccessLog(AccessLogSettings(str(path))), Tracing(None))
    observer.start()
    labels = {"route": "messages", "dialect": "anthropic", "status_class": "2xx", "model": "claude-m1"}
    metrics.flush()
    before = metrics.REGISTRY.get_sample_value("ccgate_requests_total", labels) or 0
    calls = 5000
    record = a_record(1)
    started = time.process_time()
    for _ in range(calls):
        observer.finished(record)
    metrics.flush()
    cpu_us = (time.process_time() - started) / calls * 1e6  # includes the writer thread's share
    await observer.stop()
    print(f"Observer.finished with metrics and a file access log: {cpu_us:.1f} us CPU per request")
    assert metrics.REGISTRY.get_sample_value("ccgate_requests_total", labels) - before == calls
    assert len(path.read_bytes().splitlines()) == calls
    assert cpu_us < 100


def test_settings_read_the_logging_variables(monkeypatch) -> None:
    from ccgate.config import Settings

    monkeypatch.setenv("CCGATE_ACCESS_LOG", "stdout")
    monkeypatch.setenv("CCGATE_LOG_FORMAT", "TEXT")
    monkeypatch.setenv("CCGATE_LOG_LEVEL", "warning")
    monkeypatch.setenv("CCGATE_METRICS_USER_LABELS", "1")
    settings = Settings.from_env()
    assert (settings.access_log, settings.log_format, settings.log_level, settings.metrics_user_labels) == (
        "stdout", "text", "WARNING", True)
    monkeypatch.delenv("CCGATE_ACCESS_LOG")
    assert Settings.from_env().access_log == "off"
