"""Shared fixtures: one simulator and one gateway for the session, each in its own process."""

from __future__ import annotations

import itertools

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With xdist's --dist loadgroup (pyproject's addopts), the tests of a module that share a module-scoped
    fixture (a gateway of their own, a browser, a benchmark run, a Redis) run in one worker process, so the
    fixture is set up once rather than once in each worker that drew one of them."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        if any(definitions[-1].scope == "module" for definitions in fixtures.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


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
