"""relay.deadline: the upstream's first-byte deadline, one sweep per loop instead of a timer per request."""

from __future__ import annotations

import asyncio
import time

import pytest

from ccgate.relay.deadline import Deadlines


async def bounded(deadlines: Deadlines, seconds: float, sleep: float) -> None:
    """A wait as the upstream client bounds one."""
    task = deadlines.start(seconds)
    try:
        await asyncio.sleep(sleep)
    except asyncio.CancelledError:
        deadlines.expired(task)
        raise
    finally:
        deadlines.stop(task)


async def test_a_wait_past_its_deadline_raises_timeout_error_within_the_resolution() -> None:
    deadlines = Deadlines(resolution=0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await bounded(deadlines, 0.1, 5)
    assert 0.1 <= time.monotonic() - started < 0.5
    await asyncio.sleep(0.01)  # and the task is not cancelled again afterwards


async def test_a_wait_in_time_is_left_alone_and_not_cancelled_later() -> None:
    deadlines = Deadlines(resolution=0.02)
    await bounded(deadlines, 0.05, 0.01)
    await asyncio.sleep(0.1)  # past the deadline: a late cancellation would raise here
    assert not deadlines._due


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(resolution=0.02)

    task = asyncio.create_task(bounded(deadlines, 10, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_waits_share_one_sweep_and_each_gets_its_own_deadline() -> None:
    deadlines = Deadlines(resolution=0.02)

    async def wait(limit: float, sleep: float) -> str:
        try:
            await bounded(deadlines, limit, sleep)
        except TimeoutError:
            return "late"
        return "in time"

    outcomes = await asyncio.gather(*(wait(0.1, 0.01 if n % 2 else 1.0) for n in range(50)))
    assert outcomes == ["late" if n % 2 == 0 else "in time" for n in range(50)]
