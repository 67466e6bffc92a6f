"""The run's lock (one writing process per run directory) and what a process killed
while it made a run directory leaves."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

from paczero.errors import UserError

LOCK_NAME = ".lock"
# What an interrupted atomic write leaves: ".step-*" folders and ".<name>.<8 random>" files
# (tempfile's names); nothing else starting with a dot is touched.
TEMPORARY = re.compile(r"\.step-.+|\..+\.[a-z0-9_]{8}")


class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock``, which holds the pid of its holder.

    The kernel releases it when the process ends, however it ends; a clean release also
    removes the file. Acquiring checks that the locked file is still the one at the path,
    so a release that removes it cannot hand two processes a lock each.
    """

    def __init__(self, run_path: Path):
        self.path = Path(run_path) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise UserError(
                    f"cannot lock {self.path.parent}: {err.strerror} (is it writable?)"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise UserError(f"cannot lock {self.path.parent}: {err.strerror}") from None
                raise UserError(
                    f"{self.path.parent} is in use by process {holder} (a paczero train or "
                    "resume writing it); wait for it to end or stop it, then try again"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder released and removed it between our open and flock
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def held_elsewhere(self) -> bool:
        """Whether a process (another one, or another RunLock here) holds the lock now."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False  # no lock file: nobody holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own lock
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def killed_in_create(path: Path) -> bool:
    """Whether ``path`` holds only what ``RunDir.create`` makes before config.yaml (its lock
    file, run.json, the empty checkpoints/ and private/, an interrupted atomic write) and
    no process holds it: what a process killed inside ``create`` leaves. Nothing was
    released there and no secret was written, so the run may start again."""
    return create_leftovers(path) and not RunLock(path).held_elsewhere()


def create_leftovers(path: Path) -> bool:
    """Whether ``path`` holds only what ``RunDir.create`` makes before config.yaml."""
    path = Path(path)
    if not path.is_dir() or (path / "config.yaml").exists():
        return False
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if entry.name not in ("checkpoints", "private") or any(entry.iterdir()):
                return False
        elif entry.name not in (LOCK_NAME, "run.json") and not TEMPORARY.fullmatch(entry.name):
            return False
    return True
