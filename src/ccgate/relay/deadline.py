"""Deadlines for many concurrent waits, checked by one timer per event loop.

`asyncio.timeout()` arms a timer per use and runs a pure-Python context manager around it; the
upstream's first-byte deadline is long (minutes) and needs no sub-second precision, so a wait only
registers its task with a due time (`start`), and a sweep every `resolution` seconds cancels the tasks
that are overdue; `expired` turns that cancellation into TimeoutError, as under `asyncio.timeout()`:

    task = deadlines.start(seconds)
    try:
        return await work
    except asyncio.CancelledError:
        deadlines.expired(task)
        raise
    finally:
        deadlines.stop(task)
"""

from __future__ import annotations

import asyncio


class Deadlines:
    """Cancel a task still waiting `resolution` seconds at most after its deadline."""

    def __init__(self, resolution: float = 0.5) -> None:
        self.resolution = resolution
        self._due: dict[asyncio.Task[object], float] = {}
        self._cancelled: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, seconds: float) -> asyncio.Task[object]:
        """The running task must be done waiting within `seconds`."""
        task = asyncio.current_task()
        assert task is not None, "a deadline bounds a task's wait"
        loop = task.get_loop()
        if loop is not self._loop:  # a new event loop (tests run several): the old one's waits are over
            self._due.clear()
            self._cancelled.clear()
            self._loop, self._sweep = loop, None
        self._due[task] = loop.time() + seconds
        if self._sweep is None:
            self._sweep = loop.call_later(self.resolution, self._cancel_overdue, loop)
        return task

    def expired(self, task: asyncio.Task[object]) -> None:
        """Raise TimeoutError if the task's CancelledError is the sweep's doing (and only the sweep's)."""
        if task in self._cancelled:
            self._cancelled.discard(task)
            if task.uncancel() == 0:
                raise TimeoutError

    def stop(self, task: asyncio.Task[object]) -> None:
        """The wait is over: forget its deadline (and a cancellation the sweep sent too late to matter)."""
        del self._due[task]
        if task in self._cancelled:
            self._cancelled.discard(task)
            task.uncancel()

    def _cancel_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = loop.time()
        for task in [task for task, due in self._due.items() if due <= now]:
            self._due[task] = float("inf")  # cancelled once; `stop` still forgets it
            self._cancelled.add(task)
            task.cancel()
        self._sweep = loop.call_later(self.resolution, self._cancel_overdue, loop) if self._due else None
