"""Canaries: examples whose membership the user randomises, so a DP run can be audited.

DP protects each record's presence in the pool, which the user does not randomise. With
``audit.canaries: m`` the pool gets m canary rows after the real ones (built in: random
sentences with random labels, drawn from the public stream; or the first m examples of
``audit.canary_file``). Each canary is *included* with probability 1/2, independently, from
the secret stream (``canary-inclusion``); the inclusion is recorded only under
``private/canaries.json``. The canaries themselves are public: the attacker knows them
(docs/audit.md 4).

An excluded canary keeps its row, so that the pool size (public: it sets the DP sampling
rate and appears in result.json) does not depend on the secret, but its loss is the
constant 0: its per-example derivative is exactly 0, and a clipped sum or mean over a
Poisson sample is then exactly what it would be without the row. The run is the same as
one on the pool without the excluded canaries, with a data-independent nominal size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paczero.errors import UserError
from paczero.privacy.randomness import RandomStream
from paczero.tasks.registry import row_schema
from paczero.textfiles import read_text

CANARY_FILE = "canaries.json"  # under private/

# Neutral words for the built-in canaries: random word salads carry no sentiment, so a
# random label is memorised, not learned from the task.
_CANARY_TEXT = """
    table window river paper orange seven garden yellow music chair winter station pencil
    bridge candle forest copper silver island morning letter kitchen button ladder planet
    cotton violin harbor engine pillow marble rocket saddle tunnel velvet wagon anchor basket
    cabin desert feather glacier helmet jacket kettle lantern meadow needle oyster pepper
    quarry ribbon shovel thimble umbrella valley walnut barrel cactus dolphin falcon granite
    hammer iceberg jungle kernel lemon magnet napkin orchid parrot quilt raven spider tomato
    uniform vessel whistle yogurt zipper acorn blanket compass drawer elbow fountain gravel
    hinge ivory jigsaw ketchup locket mitten nickel olive puddle radish sponge tulip
"""
CANARY_WORDS = tuple(_CANARY_TEXT.split())
MIN_WORDS, MAX_WORDS = 6, 10


def builtin_canaries(m: int, public: RandomStream) -> list[dict[str, Any]]:
    """m SST-2-format canaries: random word salads with random labels (public stream)."""
    rng = public.generator("canaries")
    out = []
    for _ in range(m):
        n = int(rng.integers(MIN_WORDS, MAX_WORDS + 1))
        words = [CANARY_WORDS[int(w)] for w in rng.integers(len(CANARY_WORDS), size=n)]
        out.append({"sentence": " ".join(words) + " ", "label": int(rng.integers(2))})
    return out


def file_canaries(path: str | Path, m: int, task) -> list[dict[str, Any]]:
    """The first m examples of a JSON Lines file, each a row of the task (``task``: its
    config; the columns and checks are the task type's, as for a data file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"audit.canary_file {path} not found")
    schema = row_schema(task)
    keys = set(schema.columns)
    out: list[dict[str, Any]] = []
    for number, line in enumerate(read_text(path, "canary file").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path} line {number}: not JSON ({err.msg})") from None
        if not isinstance(example, dict) or not keys <= set(example):
            raise UserError(
                f"{path} line {number}: a {task.name} canary needs the keys "
                f"{', '.join(sorted(keys))}"
            )
        out.append(schema.check(example, f"{path} line {number}"))
        if len(out) == m:
            return out
    raise UserError(f"{path} holds {len(out)} canaries, fewer than audit.canaries = {m}")


def canary_examples(cfg, public: RandomStream) -> list[dict[str, Any]]:
    """The run's canaries (public: the attacker knows them); [] without ``audit.canaries``."""
    m = cfg.audit.canaries
    if m == 0:
        return []
    if cfg.audit.canary_file:
        return file_canaries(cfg.audit.canary_file, m, cfg.task)
    if cfg.task.name != "sst2":
        raise UserError(
            f"built-in canaries are SST-2 sentences; for task {cfg.task.name} set "
            "audit.canary_file to a JSON Lines file of canary examples"
        )
    return builtin_canaries(m, public)


def canary_inclusion(m: int, secret: RandomStream) -> np.ndarray:
    """Which canaries are in the training data: independent fair coins, secret stream."""
    return secret.generator("canary-inclusion").random(m) < 0.5


def check_canary_config(cfg, uses_subsets: bool) -> None:
    """Canaries are for runs without candidate subsets (DP, MeZO; ``uses_subsets``: the
    run's mechanism reads them); refuse them elsewhere."""
    if cfg.audit.canaries == 0:
        if cfg.audit.canary_file:
            raise UserError("audit.canary_file is set but audit.canaries is 0; set both")
        return
    if cfg.data.group_field:
        raise UserError(
            "audit.canaries are single rows, and paczero audit scores rows: they do not go "
            "with data.group_field (user-level units); set audit.canaries=0"
        )
    if uses_subsets:
        raise UserError(
            f"audit.canaries is for runs without candidate subsets (DP, MeZO): "
            f"{cfg.mechanism.name} already puts every pool example in the secret subset with "
            "probability 1/2, and `paczero audit` uses that; set audit.canaries=0"
        )


def digest(examples: Sequence[dict[str, Any]]) -> str:
    text = json.dumps(list(examples), sort_keys=True, ensure_ascii=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def pool_with_canaries(
    cfg,
    pool: list[dict[str, Any]],
    public: RandomStream,
    secret: RandomStream,
    uses_subsets: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(the pool's examples followed by every canary, the private record or None)."""
    check_canary_config(cfg, uses_subsets)
    canaries = canary_examples(cfg, public)
    if not canaries:
        return list(pool), None
    included = canary_inclusion(len(canaries), secret)
    n = len(pool)
    record = {
        "count": len(canaries),
        "rows": list(range(n, n + len(canaries))),
        "included": [bool(x) for x in included],
        "source": str(cfg.audit.canary_file or "built-in"),
        "digest": digest(canaries),
    }
    return [*pool, *canaries], record


class _Absent:
    """A micro-batch of excluded canaries: their loss is the constant 0."""

    def __init__(self, n: int):
        self.n_examples = n


class CanaryMaskedTask:
    """The run's task, with excluded canary rows of the training pool scored 0.

    Only ``batches``/``losses`` over the training pool change; evaluation and every other
    attribute are the wrapped task's.
    """

    def __init__(self, task: Any, pool: Any, record: dict[str, Any]):
        self._task = task
        self._pool = pool
        self.canary_record = record  # secret: the trainer writes it to private/ only
        rows = zip(record["rows"], record["included"], strict=True)
        self._absent = np.asarray(sorted(r for r, inc in rows if not inc), dtype=np.int64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def batches(
        self, encoded: Any, indices: np.ndarray, max_sequences: int
    ) -> Iterator[tuple[np.ndarray, Any]]:
        indices = np.asarray(indices)
        if encoded is not self._pool or not self._absent.size:
            yield from self._task.batches(encoded, indices, max_sequences)
            return
        absent = np.isin(indices, self._absent)
        present = np.flatnonzero(~absent)
        if present.size:
            for positions, batch in self._task.batches(encoded, indices[present], max_sequences):
                yield present[np.asarray(positions)], batch
        if absent.any():
            missing = np.flatnonzero(absent)
            yield missing, _Absent(len(missing))

    def losses(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        if isinstance(batch, _Absent):
            return torch.zeros(batch.n_examples, dtype=torch.float32)
        return self._task.losses(model, batch)


def add_canaries(
    cfg,
    task: Any,
    pool: Any,
    pool_examples: list[dict[str, Any]],
    public,
    secret,
    uses_subsets: bool = False,
):
    """The session hook: (task, encoded pool, private record or None); ``uses_subsets``:
    the run's mechanism reads candidate subsets (canaries are refused then).

    Without ``audit.canaries`` it returns its inputs. Otherwise the pool is re-encoded with
    every canary appended (a public, secret-independent size) and the task scores the
    excluded canaries 0 (see the module docstring).
    """
    if cfg.audit.canaries and (secret is None or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        raise UserError("audit.canaries runs in one process only (drop torchrun, or the canaries)")
    examples, record = pool_with_canaries(cfg, pool_examples, public, secret, uses_subsets)
    if record is None:
        return task, pool, None
    pool = task.encode(examples)
    return CanaryMaskedTask(task, pool, record), pool, record
