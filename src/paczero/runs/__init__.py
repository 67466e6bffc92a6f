"""Runs and their files: one run directory per training run.

``directory`` is the run directory (``RunDir``: config, logs, checkpoints, private state,
result.json), ``integrity`` what ``RunDir.verify`` checks before resume or export,
``lock`` its one-writer lock, ``files`` and ``tensors`` the atomic writers, and ``state``
the run as a sweep, a table or a plot sees it from outside.
"""

from paczero.runs.directory import RunDir, Verified, check_new_run_dir, default_run_dir, open_run
from paczero.runs.files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    atomic_write_bytes,
    new_output_file,
    notice,
    read_json,
    write_json,
    write_jsonl,
)
from paczero.runs.lock import LOCK_NAME, RunLock, killed_in_create
from paczero.runs.state import (
    EVAL_FILE,
    RESULT_FILE,
    dev_history,
    evaluation,
    evaluation_exists,
    finished_result,
    is_training_run,
    logged_steps,
    run_state,
)
from paczero.runs.tensors import safetensors_os_error

__all__ = [
    "EVAL_FILE",
    "LOCK_NAME",
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "RESULT_FILE",
    "RunDir",
    "RunLock",
    "Verified",
    "atomic_write_bytes",
    "check_new_run_dir",
    "default_run_dir",
    "dev_history",
    "evaluation",
    "evaluation_exists",
    "finished_result",
    "is_training_run",
    "killed_in_create",
    "logged_steps",
    "new_output_file",
    "notice",
    "open_run",
    "read_json",
    "run_state",
    "safetensors_os_error",
    "write_json",
    "write_jsonl",
]
