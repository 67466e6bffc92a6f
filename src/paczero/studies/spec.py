"""The sweep spec: a YAML file of cells and seeds, read and checked into a ``Sweep``.

`paczero sweep SPEC.yaml` makes many ordinary runs from one spec, resumable, J at a time
(``paczero.studies.scheduler``). A spec names a base config (a recipe or a YAML file),
common overrides, a grid and/or a list of cells, and seeds. Every (cell, seed) is an
ordinary run directory ``<sweep>/<cell>/seed-<s>/``; ``<sweep>/sweep.json`` holds the
resolved cells (``paczero.studies.folder``).

    base: smoke                       # a recipe name, or a YAML path relative to the spec
    set: [data.num_train=64]          # common overrides (a list of key=value, or a mapping)
    grid: {train.lr: [1e-3, 1e-2]}    # cartesian product, crossed with the training cells
    cells:                            # explicit cells (several keys each), a cell base too
      - {name: zpl, set: [mechanism.name=paczero-zpl, mechanism.subsets=8]}
      - {name: zero-shot, kind: eval, set: [task.template=review], splits: [test, dev]}
    seeds: [0, 1, 2]                  # seed s sets seed.public=s and data.seed=s
    out: runs/my-sweep                # relative to the current directory; --out overrides it

``seed.secret`` is left unset (OS entropy) unless a cell sets it. Eval cells evaluate the
base model zero-shot (no training) and store ``<cell>/seed-<s>/eval.json``.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from paczero.errors import UserError
from paczero.textfiles import load_yaml, read_text

SPEC_KEYS = ("description", "base", "set", "grid", "cells", "seeds", "out")
CELL_KEYS = ("name", "kind", "base", "set", "seeds", "splits")
KINDS = ("train", "eval")
SPLITS = ("test", "dev")
SWEEP_FILE = "sweep.json"
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


@dataclass
class Cell:
    """One row of the table: a base config plus overrides, run once per seed."""

    name: str
    kind: str
    base: str  # as written in the spec (a recipe name or a path)
    config: dict[str, Any]  # the base's mapping, read once when the sweep was made
    set: list[str]
    seeds: list[int]
    splits: list[str] = field(default_factory=list)  # eval cells

    def overrides(self, seed: int) -> list[str]:
        """Seed first, so that a cell's own ``set`` (say a fixed data.seed) wins."""
        return [f"seed.public={seed}", f"data.seed={seed}", *self.set]

    def resolved(self, seed: int):
        """The run's validated config (``RunConfig``), as ``paczero train`` builds it."""
        from paczero.config import load_config

        return load_config(self.config, self.overrides(seed))

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "base": self.base,
            "config": self.config,
            "set": self.set,
            "seeds": self.seeds,
        }
        if self.kind == "eval":
            out["splits"] = self.splits
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        return cls(
            name=data["name"],
            kind=data["kind"],
            base=data["base"],
            config=data["config"],
            set=list(data["set"]),
            seeds=list(data["seeds"]),
            splits=list(data.get("splits", [])),
        )


@dataclass
class Sweep:
    path: Path
    cells: list[Cell]
    description: str = ""
    spec: str | None = None

    def cell(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise UserError(f"{self.path} has no cell '{name}'{suggest(name, self.names())}")

    def names(self) -> list[str]:
        return [c.name for c in self.cells]

    def runs(self) -> list[tuple[Cell, int]]:
        return [(cell, seed) for cell in self.cells for seed in cell.seeds]

    def run_path(self, cell: Cell, seed: int) -> Path:
        return self.path / cell.name / f"seed-{seed}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "description": self.description,
            "spec": self.spec,
            "cells": [c.to_json() for c in self.cells],
        }


def load_spec(path: str | Path, out: str | Path | None = None) -> Sweep:
    """Read and check a spec: every (cell, seed) config is validated here, so a typo fails
    before the first run starts."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep spec not found: {path}")
    spec = load_yaml(read_text(path, "sweep spec"), path)
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a sweep spec must be a YAML mapping (base, set, grid, ...)")
    _check_keys(spec, SPEC_KEYS, f"{path}: unknown key")
    where = path.parent
    seeds = _seeds(spec.get("seeds", [0]), f"{path}: seeds")
    common = _assignments(spec.get("set"), f"{path}: set")
    base = spec.get("base")
    grid = _grid(spec.get("grid"), path)
    entries = spec.get("cells") or []
    if not isinstance(entries, list):
        raise UserError(f"{path}: cells must be a list of mappings with a name")

    cells: list[Cell] = []
    trains: list[tuple[str | None, Any, list[str], list[int]]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{path}: cells[{i}] must be a mapping with a name")
        name = str(entry["name"])
        _check_keys(entry, CELL_KEYS, f"{path}: cell '{name}' has an unknown key")
        kind = entry.get("kind", "train")
        if kind not in KINDS:
            raise UserError(f"{path}: cell '{name}': kind must be train or eval, got '{kind}'")
        cell_set = common + _assignments(entry.get("set"), f"{path}: cell '{name}': set")
        cell_seeds = (
            _seeds(entry["seeds"], f"{path}: cell '{name}': seeds") if "seeds" in entry else seeds
        )
        cell_base = entry.get("base", base)
        if kind == "eval":
            splits = entry.get("splits", ["test"])
            if not isinstance(splits, list) or not splits or set(splits) - set(SPLITS):
                raise UserError(
                    f"{path}: cell '{name}': splits must be a list of test and/or dev, "
                    f"got {splits!r}"
                )
            cells.append(_cell(name, "eval", cell_base, where, cell_set, cell_seeds, splits))
        else:
            if "splits" in entry:
                raise UserError(f"{path}: cell '{name}': splits is for eval cells only")
            trains.append((name, cell_base, cell_set, cell_seeds))
    if not trains and (grid or not entries):
        if base is None:
            raise UserError(f"{path}: no base config (set `base:` to a recipe or a YAML file)")
        trains.append((None, base, common, seeds))

    labels = _labels(list(grid))
    points = list(itertools.product(*grid.values())) if grid else [()]
    made = []
    for name, cell_base, cell_set, cell_seeds in trains:
        for point in points:
            parts = [name] if name is not None else []
            parts += [f"{label}-{_slug(v)}" for label, v in zip(labels, point, strict=True)]
            full = "_".join(parts) if parts else _slug(Path(str(cell_base)).stem)
            extra = [f"{key}={yaml_value(v)}" for key, v in zip(grid, point, strict=True)]
            made.append(_cell(full, "train", cell_base, where, [*cell_set, *extra], cell_seeds, []))
    cells = made + cells  # training cells first, then the reference (eval) rows

    seen: set[str] = set()
    for cell in cells:
        if not _NAME.match(cell.name) or cell.name == SWEEP_FILE:
            raise UserError(
                f"{path}: cell name '{cell.name}' must start with a letter or digit and hold "
                "only letters, digits and . _ + = -"
            )
        if cell.name in seen:
            raise UserError(f"{path}: two cells are named '{cell.name}'; names must be unique")
        seen.add(cell.name)
        for seed in cell.seeds:
            try:
                cell.resolved(seed)
            except UserError as err:
                raise UserError(f"{path}: cell '{cell.name}' (seed {seed}): {err}") from None
    target = Path(out) if out is not None else Path(spec.get("out") or f"runs/sweep-{path.stem}")
    return Sweep(target, cells, description=str(spec.get("description", "")), spec=str(path))


def _cell(name, kind, base, where: Path, sets, seeds, splits) -> Cell:
    from paczero.config import read_source

    if base is None:
        raise UserError(f"cell '{name}' has no base config (set `base:` at the top or in the cell)")
    base = str(base)
    local = where / base
    source = str(local) if base.endswith((".yaml", ".yml")) or local.exists() else base
    try:
        config = read_source(source)
    except UserError as err:
        raise UserError(f"cell '{name}': {err}") from None
    return Cell(name, kind, base, config, list(sets), list(seeds), list(splits))


def _check_keys(mapping: dict, allowed: tuple[str, ...], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{what} '{key}'{suggest(str(key), list(allowed))}")


def _seeds(value: Any, what: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        raise UserError(f"{what} must be a non-empty list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{what} lists a seed twice: {value!r}")
    return list(value)


def _assignments(value: Any, what: str) -> list[str]:
    """`set` as a list of key=value strings, or a mapping of dotted keys to values."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}={yaml_value(v)}" for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(a, str) and "=" in a for a in value):
        return list(value)
    raise UserError(f"{what} must be a list of key=value strings or a mapping, got {value!r}")


def _grid(value: Any, path: Path) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{path}: grid must be a mapping of config keys to lists of values")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: grid '{key}' must be a non-empty list, got {values!r}")
    return {str(k): list(v) for k, v in value.items()}


def _labels(keys: list[str]) -> list[str]:
    """The last part of each grid key, or the whole key where two last parts collide."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return [leaf if last.count(leaf) == 1 else key for key, leaf in zip(keys, last, strict=True)]


def _slug(value: Any) -> str:
    text = "+".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "-", text)


def yaml_value(value: Any) -> str:
    """A value as an override's right-hand side (parsed back as YAML by apply_override)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
