"""The run directory: resolved config, logs, tensors, private state, result.json."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from paczero.config import RunConfig
from paczero.errors import UserError
from paczero.privacy.ledger import JsonlLog, read_jsonl

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{cfg.task.name}-{cfg.mechanism.name}"


def check_new_run_dir(path: Path) -> None:
    """Refuse before any work starts if the directory already holds something."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "a run" if (path / "config.yaml").exists() else "files"
        raise UserError(
            f"output directory {path} already holds {what}; choose another --out "
            "(or `paczero resume` an unfinished run)"
        )


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, mode: int | None = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode(), mode)


class RunDir:
    """Paths and writers of one run; everything secret-dependent goes through ``private``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, cfg: RunConfig) -> RunDir:
        check_new_run_dir(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        (run.path / "checkpoints").mkdir(exist_ok=True)
        run.private_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(run.private_dir, PRIVATE_DIR_MODE)
        atomic_write_bytes(run.path / "config.yaml", cfg.to_yaml().encode())
        return run

    @property
    def private_dir(self) -> Path:
        return self.path / "private"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def open_releases(self) -> JsonlLog:
        return JsonlLog(self.path / "releases.jsonl", durable=True)

    def open_private_releases(self) -> JsonlLog:
        return JsonlLog(self.private_dir / "releases.jsonl", durable=True, mode=PRIVATE_FILE_MODE)

    def open_metrics(self) -> JsonlLog:
        return JsonlLog(self.path / "metrics.jsonl")

    def write_private(self, name: str, obj: Any) -> None:
        write_json(self.private_dir / name, obj, mode=PRIVATE_FILE_MODE)

    def save_tensors(self, name: str, named: list[tuple[str, torch.Tensor]]) -> Path:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        tensors = {n: t.detach().to("cpu").contiguous().clone() for n, t in named}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(fd)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            raise UserError(f"{self.path} has no checkpoints/{name}.safetensors")
        return load_file(path)

    def write_result(self, result: dict[str, Any]) -> None:
        write_json(self.path / "result.json", result)

    def releases(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "releases.jsonl")

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl")

    def result(self) -> dict[str, Any]:
        path = self.path / "result.json"
        if not path.exists():
            raise UserError(f"{self.path} has no result.json (is it a finished paczero run?)")
        return json.loads(path.read_text())


def open_run(path: str | Path) -> RunDir:
    run = RunDir(Path(path))
    if not run.config_path.exists():
        raise UserError(f"{path} is not a paczero run directory (no config.yaml)")
    return run
