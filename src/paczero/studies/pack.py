"""Move a study without its tensors: ``paczero pack SWEEP --to FILE`` writes the sweep folder
minus every tensor (checkpoints/, the finished runs' model/, *.safetensors) into one .tar.gz;
``paczero sweep SPEC --from FILE`` in a fresh clone on another machine unpacks it where the
spec's folder goes and continues the sweep. A zeroth-order run is its base model, its config
and its release log, so resume and export rebuild every tensor by replay (docs/durable-runs.md).

The pack holds each run's private/ (the secret seed, the private release log): it is written
owner-only (0600) and must be carried like a key.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from paczero.errors import UserError
from paczero.runs.files import atomic_write_bytes

TENSOR_FOLDERS = ("checkpoints", "model")  # what resume, export and eval rebuild by replay
LOCKS = (".lock",)


def _kept(relative: Path) -> bool:
    parts = relative.parts
    if any(part in TENSOR_FOLDERS for part in parts[:-1]) or parts[-1] in TENSOR_FOLDERS:
        return False
    return relative.suffix != ".safetensors" and relative.name not in LOCKS


def pack(folder: str | Path, to: str | Path) -> dict[str, int]:
    """The sweep (or run) folder ``folder`` without tensors into the .tar.gz ``to``, written
    whole or not at all, owner-only. Returns its file count and size in bytes."""
    folder, to = Path(folder), Path(to)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give a sweep or run directory")
    if to.exists():
        raise UserError(f"{to} exists; choose another --to or remove it first")
    if to.resolve().is_relative_to(folder.resolve()):
        raise UserError(f"--to {to} is inside {folder}; write the pack elsewhere")
    buffer, files = io.BytesIO(), 0  # a pack holds logs only: a few MB a run at most
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not path.is_symlink() and _kept(relative):
                tar.add(path, arcname=str(Path(folder.name) / relative), recursive=False)
                files += 1
    atomic_write_bytes(to, buffer.getvalue(), mode=0o600)
    return {"files": files, "bytes": to.stat().st_size}


def unpack(archive: str | Path, folder: str | Path) -> None:
    """A pack into ``folder`` (which must not exist yet): its one top folder becomes it."""
    archive, folder = Path(archive), Path(folder)
    if not archive.is_file():
        raise UserError(f"--from {archive}: no such pack file")
    if folder.exists() and any(folder.iterdir()):
        raise UserError(
            f"--from {archive}: {folder} exists already; continue it without --from, or move "
            "it away first"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            tops = {Path(m.name).parts[0] for m in members}
            if len(tops) != 1:
                raise UserError(f"{archive} is not a paczero pack (one top folder expected)")
            top = tops.pop()
            staging = Path(tempfile.mkdtemp(dir=folder.parent if folder.parent.exists() else "."))
            try:
                tar.extractall(staging, filter="data")  # no links or paths out of the folder
                for private in staging.rglob("private"):  # the folders the pack did not hold
                    if private.is_dir():
                        os.chmod(private, 0o700)
                folder.parent.mkdir(parents=True, exist_ok=True)
                if folder.exists():
                    folder.rmdir()  # empty (checked above)
                os.replace(staging / top, folder)
            finally:
                import shutil

                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"{archive} cannot be unpacked: {err}") from None
