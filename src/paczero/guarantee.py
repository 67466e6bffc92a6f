"""Words every privacy report shares, whatever its family: how a run names its privacy unit,
which data the guarantee covers, how a figure is shown. The words of each family (what it
guarantees, its rows, its plain words) are its report class's (``paczero.privacy.reports``).
Pure text: this module imports nothing of paczero.
"""

from __future__ import annotations

from typing import Any


def unit_words(data: dict[str, Any] | None) -> tuple[str, str]:
    """How a run names its privacy unit, (one, many): a user of a user-level run (every
    row sharing data.group_field's value), else an example. Every text below uses it."""
    if data and data.get("unit") == "group":
        return "user", "users"
    return "example", "examples"


def a_or_an(word: str) -> str:
    """The article: "an example", "a user" (a "u" sounded "you" takes "a")."""
    return "an" if word[0] in "aeio" else "a"


def coverage_note(data: dict[str, Any]) -> str:
    """Which data the guarantee covers, in plain words (public facts only: the unit, the
    number of units, where dev and test came from)."""
    n = data["pool_units"]
    if data.get("unit") == "group":
        what = (
            f"The privacy unit is a user (user-level): every row that shares the value of "
            f"data.group_field '{data['unit_field']}' is one unit, in or out of the pool as a "
            "whole (a DP neighbour adds or removes one unit). The guarantee covers the "
            f"{n} units of the pool only."
        )
    else:
        what = (
            f"The privacy unit is one row (example-level). The guarantee covers the {n} rows "
            "of the pool only."
        )
    carved = [part for part in ("dev", "test") if data.get(f"{part}_from_pool_source")]
    if "dev" in carved and data.get("select") == "final":
        what += (
            " The dev rows come from the pool's own source: they picked nothing (the "
            "released model is the final step's, train.select: final) and their metrics "
            "stay in private/."
        )
    elif "dev" in carved:
        what += (
            " The dev rows were carved from the pool's own source, so the dev-best model "
            "selection and the logged dev metrics are not covered; give a separate dev file "
            "(data.dev) to keep the private data in the pool."
        )
    if "test" in carved:
        what += " The test rows were carved from it too: the test metrics are not covered."
    return what


def covers(protects: Any, data: dict[str, Any] | None, splits: dict[str, Any]) -> str:
    """What the guarantee covers: the pool only, never the dev set that picks the model.
    ``protects(example)``: what the family protects of each pool example (None: nothing);
    ``data``: the report's coverage facts."""
    dev, test = splits.get("dev"), splits.get("test")
    data = data or {}
    example = f"pool {unit_words(data)[0]}"
    if data.get("unit") == "group":  # user-level: a unit is all the rows of one user
        example += f" (the rows sharing data.group_field '{data.get('unit_field')}')"
    what = protects(example)
    if what is None:
        return "Nothing: there is no guarantee."
    if splits.get("provenance") == "dev-derived":
        where = "the same article-level split of the SQuAD dev file as the pool"
    elif splits.get("provenance") != "own data":
        where = "the task's train split, disjoint from the pool"
    elif data.get("dev_from_pool_source", True):
        where = "the pool's own file (data.train)"
    else:
        where = "a file of its own (data.dev or data.test), outside the pool's source"
    rows = "rows" if data.get("unit") == "group" else "examples"  # a user has several
    if data.get("select") == "final":
        picks = (
            "picked nothing (the released model is the final step's; its metrics stay in private/)"
        )
    else:
        picks = "which picks the run's dev-best step (the default export), is **not** covered"
    return (
        f"The private pool only: {what}. It does not hide that the pool as a whole shaped "
        f"the model. The dev set ({dev} {rows}, from {where}), {picks}; the test set "
        f"({test} {rows}) only measured the figures below. The base model's own training "
        "data is outside the guarantee."
    )


def fmt(value: Any, spec: str = ".4g") -> str | None:
    """A figure as the card shows it (None stays None: the row is left out)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format(value, spec)
