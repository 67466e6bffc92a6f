"""Tensors files of a run (safetensors), written whole or not at all."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file


def save_safetensors(path: Path, named: list[tuple[str, torch.Tensor]], step: int | None) -> None:
    tensors = {n: t.detach().to("cpu").contiguous().clone() for n, t in named}
    metadata = None if step is None else {"step": str(step)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, SafetensorError):
            raise safetensors_os_error(err, path) from None
        raise


def safetensors_os_error(err: Exception, path: Path | str) -> OSError:
    """A SafetensorError from a failed write as the OSError it wraps (its "os error 28" is
    ENOSPC), so a full disk reads the same from every writer."""
    found = re.search(r"os error (\d+)|code: (\d+)", str(err))
    code = int(next(g for g in found.groups() if g)) if found else errno.EIO
    return OSError(code, os.strerror(code), str(path))
