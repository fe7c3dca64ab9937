"""Deadlines for many concurrent waits, checked by one timer per event loop.

`asyncio.timeout()` arms a timer per use and runs a pure-Python context manager around it (about 6 us a
request here); the upstream's first-byte deadline is long (minutes) and needs no sub-second precision,
so a request only registers its task with a due time, and a sweep every `resolution` seconds cancels
the tasks that are overdue.  Their wait raises TimeoutError, as under `asyncio.timeout()`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadlines:
    """Cancel a task whose `within(seconds)` block outlives its deadline (up to `resolution` late)."""

    def __init__(self, resolution: float = 0.5) -> None:
        self.resolution = resolution
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def within(self, seconds: float) -> _Bound:
        return _Bound(self, seconds)

    def _add(self, task: asyncio.Task[object], seconds: float) -> None:
        loop = task.get_loop()
        if loop is not self._loop:  # a new event loop (tests run several): the old one's waits are over
            self._due.clear()
            self._expired.clear()
            self._loop, self._sweep = loop, None
        self._due[task] = loop.time() + seconds
        if self._sweep is None:
            self._sweep = loop.call_later(self.resolution, self._cancel_overdue, loop)

    def _cancel_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        if loop is not self._loop:
            return
        for task in [task for task, due in self._due.items() if due <= now]:
            del self._due[task]
            self._expired.add(task)
            task.cancel()
        self._sweep = loop.call_later(self.resolution, self._cancel_overdue, loop) if self._due else None


class _Bound:
    """One `within()` block: registers the running task on entry, forgets it on exit."""

    __slots__ = ("_deadlines", "_seconds", "_task")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self._seconds = seconds

    def __enter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline bounds a task's wait"
        self._task = task
        self._deadlines._add(task, self._seconds)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        deadlines, task = self._deadlines, self._task
        deadlines._due.pop(task, None)
        if task in deadlines._expired:  # the sweep cancelled it: take that cancellation back, as
            deadlines._expired.discard(task)  # asyncio.timeout() does, and say why the wait ended
            if task.uncancel() == 0 and kind is asyncio.CancelledError:
                raise TimeoutError from error
