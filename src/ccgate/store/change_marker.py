"""Read-your-writes on one host: a file whose modification time says "the configuration changed".

Whoever commits an admin change (the CLI, the admin API, the console: ops.common) touches the marker
right after the commit.  Each serving process compares the marker's stamp with the one it last
caught up with on every request (one `stat`, about a microsecond) and, when it moved, reloads
before it serves the request.  So once `ccgate keys revoke` exits or the console answers, every
process on the host that shares the data directory refuses the key.  Other hosts learn of changes
through Redis (broadcast.announce_change, confirmed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

MARKER_FILE = "config-changed"


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
