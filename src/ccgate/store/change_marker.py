"""Read-your-writes on one host: a file whose modification time says "the configuration changed".

Whoever commits an admin change (the CLI, the admin API, the console: ops.common) touches the marker
right after the commit.  Each serving process watches the marker with inotify (`MarkerWatch`): the
kernel queues the event before the CLI even exits, and the event loop sets an in-memory flag no later
than the loop step that reads the next request, so a request costs one attribute check and no
system call (a `stat` cost 13 us on the measured machine, ~5% of a request's CPU).  When the flag is
up, the process reloads before it serves the request.  So once `ccgate keys revoke` exits or the
console answers, every process on the host that shares the data directory refuses the key.  Without
inotify (not Linux) the stamp is compared with a `stat` per request.  Other hosts learn of changes
through Redis (broadcast.announce_change, confirmed).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("ccgate.marker")

MARKER_FILE = "config-changed"
# inotify(7): attributes (utime), writes, and the file being replaced or removed.
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVE_SELF, IN_DELETE_SELF = 0x2, 0x4, 0x8, 0x800, 0x400
WATCHED = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF


class ChangeMarker:
    """The marker file of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / MARKER_FILE

    def touch(self) -> None:
        """Say a change was committed: set the marker's time explicitly to now, in nanoseconds, so two
        changes within one clock tick of the file system still move it.  Best effort (a CLI on another
        host may have no data directory); Redis covers other hosts."""
        stamp = time.time_ns()
        try:
            self.path.touch(mode=0o600, exist_ok=True)
            os.utime(self.path, ns=(stamp, stamp))
        except OSError:
            pass

    def stamp(self) -> int:
        """The marker's modification time in nanoseconds, 0 while there is none."""
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return 0


class MarkerWatch:
    """Whether the marker moved since `seen()` was last called: an inotify flag when the kernel has
    inotify, else a `stat` per question."""

    def __init__(self, marker: ChangeMarker) -> None:
        self.marker = marker
        self.moved = True  # until the first load
        self._stamp = -1  # the marker's stamp at the last `seen()`
        self._fd: int | None = None
        self._libc: ctypes.CDLL | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Watch with inotify from this loop; False (and `stat` per question) where that is not possible."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return False
        if fd < 0:
            return False
        self._libc, self._fd = libc, fd
        if not self._add_watch():
            self.stop(loop)
            return False
        loop.add_reader(fd, self._on_event)
        return True

    def _add_watch(self) -> bool:
        """Watch the marker file, made empty first if there is none (the watch needs a file)."""
        assert self._libc is not None and self._fd is not None
        try:
            if not self.marker.path.exists():
                self.marker.path.touch(mode=0o600)
        except OSError:
            return False
        return bool(self._libc.inotify_add_watch(self._fd, os.fsencode(self.marker.path), WATCHED) >= 0)

    def _on_event(self) -> None:
        assert self._fd is not None
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass
        self.moved = True
        if not self._add_watch():  # the marker was replaced or removed: watch the new one
            log.warning("cannot watch %s; configuration changes wait for the reload interval", self.marker.path)

    def changed(self) -> bool:
        """Whether a change may have been committed since `seen()`."""
        if self._fd is None:
            return self.marker.stamp() != self._stamp
        return self.moved

    def seen(self) -> int:
        """Lower the flag (before reading the configuration); returns the marker's stamp now."""
        self.moved = False
        self._stamp = self.marker.stamp()
        return self._stamp

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._fd is not None:
            loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
