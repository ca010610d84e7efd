"""Stop requests: SIGINT and SIGTERM ask a run to save a checkpoint and stop; a second one
aborts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class TrainingInterrupted(Exception):
    """Training stopped on request (SIGINT/SIGTERM); a checkpoint was saved."""

    def __init__(self, signum: int | None, checkpoint: Path) -> None:
        self.signum = signum
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name if signum else "a stop request"
        super().__init__(f"training interrupted by {name}; checkpoint saved to {checkpoint}. "
                         f"Continue with: thrifty train --resume {checkpoint.parent}")


class StopRequests:
    """SIGINT and SIGTERM while :meth:`installed`: the first calls ``on_first(signum)``
    (the run saves a checkpoint after the current batch and stops); a second one aborts
    at once with :class:`KeyboardInterrupt`, except inside :meth:`protect` (a checkpoint
    being written), where it waits for the write to finish, so a file is never left half
    written and the run ends as ``interrupted``.

    Args:
        on_first: called with the first signal's number.
    """

    def __init__(self, on_first: Callable[[int], None]) -> None:
        self.on_first = on_first
        self.signum: int | None = None
        self._saving = 0
        self._deferred = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            self.on_first(signum)
        elif self._saving:
            self._deferred = True  # abort once the write is done
        else:
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers, in the main thread (elsewhere nothing is installed); the previous
        ones come back on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        try:
            yield
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)

    @contextmanager
    def protect(self) -> Iterator[None]:
        """A write that a second signal must not cut: the abort waits until it ends."""
        self._saving += 1
        try:
            yield
        finally:
            self._saving -= 1
            if self._deferred and not self._saving:
                self._deferred = False
                raise KeyboardInterrupt
