"""Shared fixtures: one simulator and one gateway for the session, each in its own process."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness import Gateway, Simulator

_emails = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def deployment_services():
    """PostgreSQL and Redis of a scaled run, stopped once the session ends."""
    yield
    from services import Deployment

    Deployment.stop_shared()


@pytest.fixture(scope="session")
def sim():
    simulator = Simulator().start()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="session")
def gateway(sim, tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gateway"))
    gw.add_account("sim-main", "sk-ant-sim-main", sim.url)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def email() -> str:
    return f"user{next(_emails)}@example.com"


@pytest.fixture
def api_key(gateway, email) -> str:
    """A fresh key of a fresh user."""
    return gateway.new_key(email)


# Modules whose tests share an expensive module-scoped fixture (a gateway of their own, a browser, a
# benchmark run): under xdist each runs as one unit, so that fixture starts once instead of once in every
# worker that drew one of its tests.  (xdist's own --dist loadgroup cannot do it under pytest 9, whose
# node ids xdist can no longer suffix with the group.)
SHARED_FIXTURE_MODULES = frozenset({
    "test_auth_hygiene", "test_bench_smoke", "test_claude_code_billing", "test_demo", "test_deploy_nginx",
    "test_first_hour", "test_fuzz", "test_http_limits", "test_obs_e2e", "test_read_your_writes", "test_web",
})


def pytest_xdist_make_scheduler(config, log):
    """xdist's scheduling by scope, where the scope of a test is its module for SHARED_FIXTURE_MODULES and
    the test alone otherwise (so the rest is spread test by test, as with the default --dist load)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if Path(module).stem in SHARED_FIXTURE_MODULES else nodeid

    return SharedFixtureScheduling(config, log)


def pytest_sessionstart(session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        import fuzz_tally

        fuzz_tally.clear_saved()


def pytest_sessionfinish(session) -> None:
    """Each process keeps its part of the fuzz tally where the controller's summary finds it."""
    import fuzz_tally

    fuzz_tally.save()


def pytest_terminal_summary(terminalreporter) -> None:
    """The fuzz suite's tally (tests/test_fuzz.py), summed over the xdist workers, when it ran."""
    import fuzz_tally

    if (summary := fuzz_tally.summary(fuzz_tally.load_saved())) is not None:
        terminalreporter.write_line(summary)


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list]]:
    """A tiny OTLP/HTTP receiver: POST /v1/traces with a protobuf body."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append(message)
                self.send_response(200)
            else:
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()
