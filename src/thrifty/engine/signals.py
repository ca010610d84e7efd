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


@contextmanager
def stop_requests(on_first: Callable[[int], None], is_stopping: Callable[[], bool]
                  ) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``on_first(signum)`` the first time and raise
    :class:`KeyboardInterrupt` when ``is_stopping()`` already says a stop was asked. The
    previous handlers come back on exit. Outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if is_stopping():  # second signal: stop now
            raise KeyboardInterrupt
        on_first(signum)

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
