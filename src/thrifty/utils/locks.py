"""Folder locks: one process at a time per run folder and per benchmark seed.

A lock is an ``flock`` on a file in the folder, holding the owner's process id and command;
the operating system releases it when the owner exits, however it exits, so a lock is never
left stale. A second process is refused at once with a message naming the holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path
from typing import IO


class FolderBusyError(RuntimeError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder/name`` (a context manager).

    Args:
        folder: the folder to lock (created if missing).
        name: the lock file's name. Default ``".lock"``.
        what: what the folder is, for the message. Default ``"folder"``.
    """

    def __init__(self, folder: str | Path, name: str = ".lock", what: str = "folder") -> None:
        self.path = Path(folder) / name
        self.what = what
        self._file: IO[str] | None = None

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise FolderBusyError(
                f"{self.what} {self.path.parent} is in use by {holder}: wait for it to end "
                "or stop it (two processes would train the same runs twice)") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)[:200]})")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
