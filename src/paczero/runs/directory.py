"""The run directory: resolved config, logs, tensors, private state, result.json.

Integrity (docs/algorithms.md 8):

- a writing process holds an exclusive ``fcntl`` lock on ``DIR/.lock`` for its life; a
  second one is refused with the holder's pid (``paczero.runs.lock``);
- ``run.json`` (public) and ``private/secret.json`` carry the same random run identity,
  drawn when the directory is created, so a ``private/`` from another run is refused even
  when the configs are identical;
- the release logs are hash-chained (``paczero.privacy.ledger``), and every checkpoint
  records the hash of the last record it includes;
- ``verify`` checks all of it (``paczero.runs.integrity``) before ``resume`` or ``export``
  touches the directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from paczero.config import RunConfig
from paczero.errors import Interrupted, Stopped, UserError
from paczero.mechanisms.base import RELEASE_KINDS
from paczero.privacy.ledger import GENESIS, JsonlLog, read_chain, read_records, repair_jsonl
from paczero.records import ReleaseRecord, release_records
from paczero.runs.files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    atomic_write_bytes,
    fsync_dir,
    notice,
    read_json,
    remove_entry,
    write_json,
)
from paczero.runs.integrity import (
    check_charges,
    check_checkpoints,
    check_metrics,
    check_pair,
    check_private_side,
    first_difference,
    private_ahead,
)
from paczero.runs.lock import LOCK_NAME, TEMPORARY, RunLock, create_leftovers, killed_in_create
from paczero.runs.tensors import save_safetensors
from paczero.textfiles import decode_utf8, read_bytes

_ISSUED: set[Path] = set()  # default run directories this process has named


def default_run_dir(cfg: RunConfig) -> Path:
    """runs/<time>-<task>-<mechanism>-<random>: unique even for runs started the same second.
    A name this process gave before, or one on disk, is drawn again (24 random bits alone
    collide once in ~800 batches of 200 names)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        name = f"{stamp}-{cfg.task.name}-{cfg.mechanism.name}-{secrets.token_hex(3)}"
        path = Path("runs") / name
        if path not in _ISSUED and not path.exists():
            _ISSUED.add(path)
            return path


def check_new_run_dir(path: Path) -> None:
    """Refuse before any work starts if the directory already holds something, or cannot
    be made (a file in the way, a folder we may not write)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output directory {path} is a file; choose another --out")
    leftovers = path.exists() and any(p.name != LOCK_NAME for p in path.iterdir())
    if leftovers and not killed_in_create(path):  # a kill inside create: started again
        what = "a run" if (path / "config.yaml").exists() else "files"
        raise UserError(
            f"output directory {path} already holds {what}; choose another --out "
            "(or `paczero resume` an unfinished run)"
        )
    existing = path if path.exists() else _existing_parent(path)
    if not existing.is_dir():
        raise UserError(f"cannot create output directory {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot create output directory {path}: {existing} is not writable")


def _existing_parent(path: Path) -> Path:
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            return parent
    return Path("/")


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what mkdir -p creates)."""
    path = Path(os.path.abspath(path))
    if path.exists():
        return None
    top = path
    for parent in path.parents:
        if parent.exists():
            return top
        top = parent
    return top


@dataclass
class Verified:
    """What ``RunDir.verify`` read: the consistent public (and private) logs."""

    records: list[ReleaseRecord]
    private: list[dict[str, Any]] | None
    metrics: list[dict[str, Any]]
    checkpoints: list[int]  # readable checkpoints that match the log
    private_ahead: bool  # the private log holds one never-published record to drop


class RunDir:
    """Paths and writers of one run; everything secret-dependent goes through ``private``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = RunLock(self.path)
        self._created: Path | None = None  # what create() made (removed on set-up failure)
        self._created_inside = False  # create() used an empty folder the user made
        self._release_log: JsonlLog | None = None

    @classmethod
    def create(cls, path: Path, cfg: RunConfig) -> RunDir:
        """Make the directory, lock it, and write its identity and config.yaml.

        Call ``writing()`` around everything that follows: it removes what this made if the
        run fails before its first release, and releases the lock.
        """
        path = Path(path)
        check_new_run_dir(path)
        run = cls(path)
        created = _first_missing(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create output directory {path}: {err.strerror}") from None
        run._lock.acquire()  # refused: another process made and holds it; not ours to remove
        run._created = created if created is not None else path
        run._created_inside = created is None  # a folder the user made: remove its contents only
        try:
            if create_leftovers(path):  # a process killed in here left them (nothing released)
                for entry in path.iterdir():
                    if entry.name != LOCK_NAME:
                        remove_entry(entry)
            check_new_run_dir(path)  # another process may have filled it before our lock
            (run.path / "checkpoints").mkdir(exist_ok=True)
            run.private_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            os.chmod(run.private_dir, PRIVATE_DIR_MODE)
            identity = {"run_id": secrets.token_hex(16), "created": _now()}
            write_json(run.path / "run.json", {**identity, "config": cfg.public_dict()})
            atomic_write_bytes(run.config_path, cfg.to_yaml().encode())
        except BaseException as err:
            run._abandon()
            if isinstance(err, OSError):
                raise UserError(_os_error(err, run.path, released=False)) from None
            raise
        return run

    # ------------------------------------------------------------ lock and failures

    def lock(self) -> None:
        """Take the run's exclusive lock (``UserError`` naming the holder if taken)."""
        self._lock.acquire()

    def unlock(self) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def writing(self) -> Iterator[RunDir]:
        """Around a process's writes: releases the lock at the end; on a failure before the
        first release removes what ``create`` made, after it keeps the (consistent) run and
        says how to continue; an OSError (full disk, read-only folder) becomes one line."""
        try:
            yield self
        except BaseException as err:
            released = self.released_steps() > 0
            removed = not released and self._created is not None
            if removed:
                self._abandon()
            if isinstance(err, OSError):
                raise UserError(_os_error(err, self.path, released)) from None
            if isinstance(err, UserError) and removed:
                raise UserError(
                    f"{err}; nothing was released, so {self.path} was removed"
                ) from None
            if isinstance(err, Interrupted) and removed:  # no checkpoint left to resume
                raise Stopped(
                    f"interrupted before the first step; nothing was released, so {self.path} "
                    "was removed: start the run again",
                    err.exit_code - 128,
                ) from None
            raise
        finally:
            self._lock.release()

    def _abandon(self) -> None:
        """Remove what ``create`` made (nothing was released) and release the lock."""
        created, self._created = self._created, None
        if created is not None and self._lock.held:
            with contextlib.suppress(OSError):
                if self._created_inside:
                    for entry in created.iterdir():
                        if entry.name != LOCK_NAME:
                            remove_entry(entry)
                else:
                    shutil.rmtree(created)
        self._lock.release()

    def released_steps(self) -> int:
        """Complete lines of releases.jsonl (no parsing: used on failure paths)."""
        try:
            return self.releases_path.read_bytes().count(b"\n")
        except OSError:
            return 0

    def clean_temporaries(self) -> list[Path]:
        """Remove what a killed atomic write left (``TEMPORARY``)."""
        removed = []
        for folder in (self.path, self.path / "checkpoints", self.private_dir):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if TEMPORARY.fullmatch(entry.name) and entry.name != LOCK_NAME:
                    remove_entry(entry)
                    removed.append(entry)
        return removed

    # ------------------------------------------------------------ paths and identity

    @property
    def private_dir(self) -> Path:
        return self.path / "private"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def releases_path(self) -> Path:
        return self.path / "releases.jsonl"

    @property
    def private_releases_path(self) -> Path:
        return self.private_dir / "releases.jsonl"

    def run_id(self) -> str:
        """The run's random identity (``run.json``); private/secret.json carries it too."""
        info = read_json(self.path / "run.json", "run identity file")
        run_id = info.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise UserError(f"{self.path / 'run.json'} is damaged (no run_id)")
        return run_id

    def check_config(self) -> None:
        """config.yaml as the run was made (run.json keeps the config it was made with,
        and each ``resume --set`` change): an edit by hand is refused, naming the key. A
        run made before run.json kept its config is not checked."""
        info = read_json(self.path / "run.json", "run identity file")
        made = info.get("config")
        if not isinstance(made, dict):
            return
        text = decode_utf8(read_bytes(self.config_path, "config file"), self.config_path)
        try:
            now = yaml.safe_load(text)
        except yaml.YAMLError:
            now = None
        if not isinstance(now, dict):
            raise UserError(f"{self.config_path} was edited: it is no longer a YAML mapping")
        key = first_difference(made, now)
        if key is not None:
            raise UserError(
                f"{self.config_path} was edited ({key}): a run's config is part of its "
                "identity and cannot change; restore it (run.json holds the config the run "
                f"was made with), use paczero resume {self.path} --set train.lr=VALUE for "
                "what may change, or start a new run"
            )

    # ------------------------------------------------------------ logs

    def open_releases(self) -> JsonlLog:
        self._release_log = JsonlLog(self.releases_path, durable=True, chained=True)
        return self._release_log

    def open_private_releases(self) -> JsonlLog:
        return JsonlLog(
            self.private_releases_path, durable=True, mode=PRIVATE_FILE_MODE, chained=True
        )

    def open_metrics(self) -> JsonlLog:
        return JsonlLog(self.path / "metrics.jsonl")

    def open_private_metrics(self) -> JsonlLog:
        """private/metrics-dev.jsonl: dev evaluations on rows of the private source."""
        return JsonlLog(self.private_dir / "metrics-dev.jsonl", mode=PRIVATE_FILE_MODE)

    def write_private(self, name: str, obj: Any) -> None:
        write_json(self.private_dir / name, obj, mode=PRIVATE_FILE_MODE)

    def releases(
        self, repair: bool = False, kinds: Iterable[str] = RELEASE_KINDS
    ) -> list[ReleaseRecord]:
        """The public release log, checked (a damaged log is refused with its line number;
        a release of a kind not in ``kinds``, the run's mechanism's where the reader knows
        it, too). ``repair`` (before writing to the run again) cuts torn last lines off
        both logs and drops a private record that was never published."""
        if repair:
            repair_jsonl(self.releases_path)
            repair_jsonl(self.private_releases_path)
            self._reconcile_release_logs(read_chain(self.releases_path))
        return self._typed(read_chain(self.releases_path), kinds)

    def _typed(
        self, records: list[dict[str, Any]], kinds: Iterable[str] = RELEASE_KINDS
    ) -> list[ReleaseRecord]:
        try:
            return release_records(records, kinds)
        except ValueError as err:
            raise UserError(f"{self.releases_path}: {err}") from None

    def private_releases(self) -> list[dict[str, Any]]:
        return read_chain(self.private_releases_path)

    def _reconcile_release_logs(self, public: list[dict[str, Any]]) -> None:
        """The private record of a step is written before the public one, so after a crash
        the private log may hold one record more: a release that was never published nor
        applied, dropped here (the step is redone with the same keyed draws). Anything
        else means the pair was damaged or mixed up: refuse."""
        private = self.private_releases()
        n = len(public)
        if private_ahead(public, private):
            _truncate_lines(self.private_releases_path, n)
            private = private[:n]
        check_pair(public, private, self.releases_path, self.private_releases_path)

    def metrics(self, repair: bool = False) -> list[dict[str, Any]]:
        if repair:
            repair_jsonl(self.path / "metrics.jsonl")
        return read_records(self.path / "metrics.jsonl")

    def cut_metrics(self, keep: int) -> None:
        """Keep the first ``keep`` lines of metrics.jsonl (drops a test line that a killed
        finish wrote before its result.json)."""
        path = self.path / "metrics.jsonl"
        if path.exists():
            _truncate_lines(path, keep)

    def result(self) -> dict[str, Any]:
        path = self.path / "result.json"
        if not path.exists():
            raise UserError(f"{self.path} has no result.json (is it a finished paczero run?)")
        return read_json(path, "result file")

    def write_result(self, result: dict[str, Any]) -> None:
        write_json(self.path / "result.json", result)

    # ------------------------------------------------------------ tensors

    def save_tensors(
        self, name: str, named: list[tuple[str, torch.Tensor]], step: int | None = None
    ) -> Path:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_safetensors(path, named, step)
        fsync_dir(path.parent)
        return path

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            raise UserError(f"{self.path} has no checkpoints/{name}.safetensors")
        try:
            return load_file(path)
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"{path} is unreadable ({_first_line(err)})") from None

    def tensors_step(self, name: str) -> int | None:
        """The step a tensors file holds (from its metadata), None if absent or unreadable."""
        path = self.path / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            return None
        try:
            with safe_open(path, framework="pt") as handle:
                step = (handle.metadata() or {}).get("step")
            return None if step is None else int(step)
        except (SafetensorError, OSError, ValueError):
            return None

    def log_sha(self, step: int) -> str | None:
        """The hash of the last release record a checkpoint at ``step`` includes."""
        if step == 0:
            return GENESIS
        log = self._release_log
        if log is not None and not log._file.closed and len(log.shas) >= step:
            return log.shas[step - 1]
        try:
            records = read_chain(self.releases_path)
        except UserError:
            return None
        return records[step - 1]["sha"] if len(records) >= step else None

    def save_checkpoint(
        self,
        step: int,
        named: list[tuple[str, torch.Tensor]],
        keep: int,
        state: dict[str, Any] | None = None,
    ) -> None:
        """checkpoints/step-NNNNNNN/ written whole or not at all (files and folder fsynced
        before the rename); step 0 and the last few kept.

        ``state`` is public state only (mechanism posterior, schedule); secret state lives in
        private/ and does not change after setup. ``log`` ties it to its release record.
        """
        folder = self.path / "checkpoints"
        final = folder / f"step-{step:07d}"
        if final.exists():
            return
        folder.mkdir(exist_ok=True)  # a resumed run whose checkpoints/ was deleted
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".step-"))
        try:
            save_safetensors(tmp / "trainable.safetensors", named, step)
            head = {"step": step, "log": self.log_sha(step)}
            write_json(tmp / "state.json", {**head, **(state or {})})
            fsync_dir(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(folder)
        old = self.checkpoint_steps()[:-keep]
        for stale in old:
            if stale != 0:
                shutil.rmtree(folder / f"step-{stale:07d}")

    def checkpoint_steps(self) -> list[int]:
        folder = self.path / "checkpoints"
        steps = []
        for entry in folder.glob("step-*"):
            number = entry.name.removeprefix("step-")
            if entry.is_dir() and number.isdigit() and (entry / "state.json").exists():
                steps.append(int(number))
        return sorted(steps)

    def checkpoint_state(self, step: int) -> dict[str, Any] | None:
        """state.json of a checkpoint, None if unreadable."""
        try:
            return read_json(self.path / "checkpoints" / f"step-{step:07d}" / "state.json", "")
        except UserError:
            return None

    def load_checkpoint(
        self, at_most: int, names: list[str] | None = None
    ) -> tuple[int, dict[str, torch.Tensor] | None]:
        """The newest readable checkpoint with step <= at_most (step 0 and None if none).

        An unreadable one (a truncated file, missing tensors) is passed over with one line
        saying so: the log replays from an older one to the same state.
        """
        usable = [s for s in self.checkpoint_steps() if s <= at_most]
        for step in reversed(usable):
            path = self.path / "checkpoints" / f"step-{step:07d}" / "trainable.safetensors"
            try:
                tensors = load_file(path)
                missing = [n for n in names or () if n not in tensors]
                if missing:
                    raise ValueError(f"no tensor {missing[0]}")
                if self.checkpoint_state(step) is None:
                    raise ValueError("state.json is damaged")
            except (SafetensorError, OSError, ValueError) as err:
                older = [s for s in usable if s < step]
                instead = f"step {older[-1]}" if older else "theta_0"
                notice(
                    f"checkpoint {path.parent.name} is unreadable ({_first_line(err)}); "
                    f"using {instead} and replaying the log from there"
                )
                continue
            return step, tensors
        return 0, None

    # ------------------------------------------------------------ verification

    def verify(self, private: bool) -> Verified:
        """Check the whole directory before resume (``private``) or export touches it:
        the run identity on both sides, the hash-chained logs (and their pairing), the
        charges, every checkpoint against its record, and metrics.jsonl. Reads only."""
        run_id = self.run_id()
        self.check_config()
        records = read_chain(self.releases_path)
        priv = None
        ahead = False
        if private:
            try:
                check_private_side(self.path, run_id)
            except UserError as err:
                if records or self.released_steps():
                    raise
                raise UserError(
                    f"{err} (it was stopped in set-up, before anything was released: remove "
                    "it and start again with paczero train)"
                ) from None
            priv = self.private_releases()
            ahead = private_ahead(records, priv)
            pair = priv[: len(records)] if ahead else priv
            check_pair(records, pair, self.releases_path, self.private_releases_path)
        check_charges(records, self.releases_path)
        states = ((step, self.checkpoint_state(step)) for step in self.checkpoint_steps())
        checkpoints = check_checkpoints(self.path, records, states)
        metrics = read_records(self.path / "metrics.jsonl")
        check_metrics(self.path / "metrics.jsonl", metrics, len(records))
        return Verified(self._typed(records), priv, metrics, checkpoints, ahead)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _os_error(err: OSError, path: Path, released: bool) -> str:
    where = f" ({err.filename})" if err.filename else ""
    what = err.strerror or _first_line(err)
    if released:
        return (
            f"{what}{where}: {path} is consistent up to its last logged step; fix the cause "
            f"(free disk space, permissions) and continue with: paczero resume {path}"
        )
    return f"{what}{where}: the run had released nothing, so {path} was removed"


def _truncate_lines(path: Path, lines: int) -> None:
    """Keep the first ``lines`` lines of a file, durably."""
    data = path.read_bytes()
    cut = 0
    for _ in range(lines):
        cut = data.index(b"\n", cut) + 1
    with open(path, "r+b") as handle:
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())


def open_run(path: str | Path) -> RunDir:
    run = RunDir(Path(path))
    if run.path.exists() and not run.path.is_dir():
        raise UserError(f"{path} is a file, not a paczero run directory")
    if not run.path.is_dir():
        raise UserError(f"{path} is not a paczero run directory (no such folder)")
    if not run.config_path.exists() and killed_in_create(run.path):
        raise UserError(
            f"{path} was stopped while it was being created, before its config and anything "
            f"released: nothing to resume; start it again with paczero train ... --out {path}"
        )
    if not run.config_path.exists():
        raise UserError(f"{path} is not a paczero run directory (no config.yaml)")
    return run
