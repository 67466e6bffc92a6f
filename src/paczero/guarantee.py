"""The guarantee in words: every text that states what a run's privacy report proves.

One place for the result's ``guarantee`` line of each family, the terminal report
(``describe_privacy``), the model card's plain words, coverage and rows, and the figures a
table shows. Each family of mechanism (pac, dp, none; ``Mechanism.family``, recorded in the
report as ``framework``) words its own; nothing here re-derives the family. Pure text:
this module imports nothing of paczero, so mechanisms can state their guarantee from it.
"""

from __future__ import annotations

from typing import Any

# The ``guarantee`` line of result.json["privacy"], per family, over the run's unit.
_GUARANTEE = {
    "pac": (
        "The bound covers membership of a pool {one} in the secret subset S* (the half of the "
        "pool the model was trained on) against an attacker who knows the pool, the "
        "candidate subsets and every public release; it is not a guarantee for the pool "
        "against the outside world."
    ),
    "dp": (
        "(epsilon, delta)-differential privacy for each pool {one} under the neighbouring "
        "relation stated below; the membership-inference bound is the DP bound at prior "
        "0.5. The guarantee covers the pool only."
    ),
    "none": "No privacy guarantee: this mechanism releases data-dependent values unprotected.",
}
GUARANTEE_PAC = _GUARANTEE["pac"].format(one="example")
GUARANTEE_DP = _GUARANTEE["dp"].format(one="example")
GUARANTEE_NONE = _GUARANTEE["none"]


def family(privacy: dict[str, Any]) -> str:
    """The family of the mechanism that wrote a privacy report: pac, dp or none."""
    return privacy.get("framework", "none")


def unit_words(data: dict[str, Any] | None) -> tuple[str, str]:
    """How a run names its privacy unit, (one, many): a user of a user-level run (every
    row sharing data.group_field's value), else an example. Every text below uses it."""
    if data and data.get("unit") == "group":
        return "user", "users"
    return "example", "examples"


def guarantee_line(line: str, data: dict[str, Any] | None) -> str:
    """A mechanism's ``guarantee`` line over the run's unit (word for word for an
    example-level run, and for a line of the mechanism's own)."""
    for template in _GUARANTEE.values():
        if line == template.format(one="example"):
            return template.format(one=unit_words(data)[0])
    return line


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


# ---------------------------------------------------------------- the terminal report


def describe_privacy(privacy: dict[str, Any]) -> str:
    """The report in plain words, from its fields (the family decides the wording)."""
    lines = [f"Privacy report ({privacy['mechanism']})"]
    lines += _REPORT_LINES[family(privacy)](privacy)
    if privacy["unanimity_fraction"] is not None:
        lines.append(f"  unanimous releases: {100 * privacy['unanimity_fraction']:.1f}%")
    kinds = ", ".join(f"{k} {v}" for k, v in privacy["release_kinds"].items())
    lines.append(f"  releases: {kinds} over {privacy['steps']} steps")
    return "\n".join(lines)


def _describe_dp(privacy: dict[str, Any]) -> list[str]:
    spent = privacy["spent"]
    return [
        f"  spent: epsilon {spent['epsilon']:.4g}, delta {spent['delta']:g} "
        f"({privacy['accountant']} accountant)",
        f"  neighbouring relation: {privacy['neighbouring_relation']}",
        f"  membership-inference success bound: {privacy['posterior_bound']:.4f} "
        f"(prior 0.5); matched MI: {privacy['matched_mi']:.4g} nats",
        f"  {privacy['guarantee']}",
        f"  batch: {dp_batch_text(privacy)}",
        f"  denominator: {dp_denominator_text(privacy)}",
        *_describe_first_order(privacy),
        *_describe_data(privacy),
        f"  secret source: {privacy['secret_source']}",
    ]


def dp_batch_text(privacy: dict[str, Any]) -> str:
    """A DP step's rows: a Poisson sample of the pool, not ``train.batch_size`` rows."""
    return (
        f"a Poisson sample of the pool, expected size {privacy['expected_batch']} (rate q = "
        f"{privacy['sample_rate']:.4g}); its real size is secret; train.batch_size is not used"
    )


def dp_denominator_text(privacy: dict[str, Any]) -> str:
    """What divides the noisy sum, and why a noisy count buys nothing here."""
    if privacy.get("denominator") == "noisy-count":
        return (
            f"a noisy count of the pool times q (the DP-AggZO paper's): it spends epsilon "
            f"{privacy['count_epsilon']:.3g} of the total to hide the pool's size, which this "
            "report states anyway; it is kept only to reproduce the paper's noise "
            "(mechanism.denominator: expected spends nothing)"
        )
    return f"the expected batch q N = {privacy['expected_batch']} (public; costs no epsilon)"


def _describe_first_order(privacy: dict[str, Any]) -> list[str]:
    """dp-sgd: it releases whole gradients; the layers frozen for want of Opacus support."""
    lines = [f"  {privacy['release_note']}"] if "release_note" in privacy else []
    if privacy.get("frozen_note"):
        lines.append(f"  {privacy['frozen_note']}")
    return lines


def _describe_data(privacy: dict[str, Any]) -> list[str]:
    data = privacy.get("data")
    return [] if data is None else [f"  data: {data['note']}"]


def _describe_pac(privacy: dict[str, Any]) -> list[str]:
    bound, charged = privacy["mi_bound"], privacy["spent"]["charged"]
    one = unit_words(privacy.get("data"))[0]
    lines = []
    if bound == 0.0:
        lines.append("  mutual information: I(S*; releases) = 0 nats")
        lines.append(
            "  I = 0: the released updates are independent of which candidate subset was "
            f"used, so no attacker does better than the prior 0.5 at telling whether {_a(one)} "
            f"{one} was in it."
        )
    else:
        lines.append(
            f"  mutual information bound: I(S*; releases) <= {bound:g} nats, the budget "
            "(every path's charges add up to at most it, and the MI is their expectation)"
        )
        lines.append(
            f"  charges summed on this run's path: {charged:.4g} nats (depends on the path; "
            "not the mutual information, not a bound)"
        )
    lines.append(
        f"  membership-inference success bound: {privacy['posterior_bound']:.4f} (prior 0.5); "
        f"matched DP epsilon: {privacy['matched_epsilon']:.3g}"
    )
    lines.append(f"  {privacy['guarantee']}")
    lines += _describe_data(privacy)
    lines.append(f"  secret source: {privacy['secret_source']}")
    return lines


def _describe_none(privacy: dict[str, Any]) -> list[str]:
    return [f"  {privacy['guarantee']}"]


_REPORT_LINES = {"pac": _describe_pac, "dp": _describe_dp, "none": _describe_none}


# ---------------------------------------------------------------- the model card


def plain_words(privacy: dict[str, Any], pool: int | None) -> str:
    """The guarantee in plain words, from the report's fields (the family decides)."""
    return _PLAIN[family(privacy)](privacy, pool)


def _a(word: str) -> str:
    """The article: "an example", "a user" (a "u" sounded "you" takes "a")."""
    return "an" if word[0] in "aeio" else "a"


def _likely(relation: str, one: str) -> str:
    """What a DP guarantee says, in the words of its neighbouring relation."""
    if relation == "replace-one":
        return (
            f"the model is almost as likely whatever any one {one} of the pool is (one "
            f"{one} replaced by another)"
        )
    return f"the model is almost as likely whether any one {one} was in the pool or not"


def _plain_pac(privacy: dict[str, Any], pool: int | None) -> str:
    bound = float(privacy.get("mi_bound") or 0.0)
    one, many = unit_words(privacy.get("data"))
    size = f" ({pool} {many})" if pool else ""
    lead = (
        f"The private pool{size} was split at random into candidate halves and one half, "
        "S*, was secretly chosen for training; the candidate halves are public."
    )
    if bound == 0.0:
        return (
            f"{lead} The released updates, and so this model, are exactly as likely "
            "whichever half was chosen: I(S*; releases) = 0. Nobody, even knowing every "
            f"pool {one} and every candidate half, can tell better than a coin flip "
            f"(0.5) whether {_a(one)} {one} was in the training half."
        )
    return (
        f"{lead} Everything released (and so this model) reveals at most {bound:g} nats "
        "about which half it was: I(S*; releases) <= "
        f"{bound:g}, the budget, whatever path the run took. Nobody can guess whether "
        f"{_a(one)} {one} was in the training half with probability above "
        f"{float(privacy['posterior_bound']):.4f} (a coin flip is 0.5); that is the "
        f"bound of a DP epsilon of {float(privacy['matched_epsilon']):.3g}."
    )


def _plain_dp(privacy: dict[str, Any], pool: int | None) -> str:
    one, many = unit_words(privacy.get("data"))
    pool_text = f"the {pool} {many} of the private pool" if pool else "the private pool"
    spent = privacy.get("spent") or {}
    relation, _, detail = str(privacy.get("neighbouring_relation", "stated")).partition(";")
    detail = f" ({detail.strip()})" if detail.strip() else ""
    return (
        f"({float(spent.get('epsilon', 0.0)):.4g}, {float(spent.get('delta', 0.0)):g})-"
        f"differential privacy for each of {pool_text}, under the {relation.strip()} "
        f"relation{detail}: {_likely(relation.strip(), one)}. No attacker "
        f"guesses whether {_a(one)} {one} was in the pool with probability above "
        f"{float(privacy['posterior_bound']):.4f} (prior 0.5)."
    )


def _plain_none(privacy: dict[str, Any], pool: int | None) -> str:
    return (
        "No privacy guarantee: this run's mechanism released data-dependent values "
        "unprotected (a non-private baseline)."
    )


_PLAIN = {"pac": _plain_pac, "dp": _plain_dp, "none": _plain_none}

# What the guarantee protects of each pool example (None: nothing), per family.
_PROTECTS = {
    "pac": lambda example: (
        f"membership of each {example} in the secret training half S*, against an "
        "attacker who knows the pool and the candidate halves"
    ),
    "dp": lambda example: (
        f"the presence in the pool of each {example} (the secret Poisson samples "
        "were drawn from it)"
    ),
    "none": lambda example: None,
}


def covers(privacy: dict[str, Any], splits: dict[str, Any]) -> str:
    """What the guarantee covers: the pool only, never the dev set that picks the model."""
    dev, test = splits.get("dev"), splits.get("test")
    data = privacy.get("data") or {}
    example = f"pool {unit_words(data)[0]}"
    if data.get("unit") == "group":  # user-level: a unit is all the rows of one user
        example += f" (the rows sharing data.group_field '{data.get('unit_field')}')"
    what = _PROTECTS[family(privacy)](example)
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


def privacy_rows(privacy: dict[str, Any]) -> list[tuple[str, Any]]:
    """The model card's table of the guarantee and what it cost."""
    rows: list[tuple[str, Any]] = [("mechanism", f"`{privacy.get('mechanism')}`")]
    rows += _ROWS[family(privacy)](privacy)
    if privacy.get("unanimity_fraction") is not None:
        rows.append(("unanimous releases", f"{100 * privacy['unanimity_fraction']:.1f}%"))
    rows.append(("steps (releases)", f"{privacy.get('steps')} ({privacy.get('releases')})"))
    rows.append(("secret source", privacy.get("secret_source")))
    return rows


def _rows_pac(privacy: dict[str, Any]) -> list[tuple[str, Any]]:
    bound = privacy.get("mi_bound")
    rows: list[tuple[str, Any]] = [
        ("guarantee", f"I(S*; releases) <= {bound:g} nats" if bound else "I(S*; releases) = 0"),
        ("budget", f"{fmt(privacy.get('budget'), 'g')} nats"),
        ("MI bound", f"{fmt(bound, 'g')} nats"),
        ("membership-inference bound", fmt(privacy.get("posterior_bound"))),
        ("matched DP epsilon", fmt(privacy.get("matched_epsilon"), ".3g")),
        ("candidate subsets M", privacy.get("subsets")),
    ]
    charged = (privacy.get("spent") or {}).get("charged")
    if bound:
        rows.append(("charges summed on this run's path", f"{fmt(charged)} nats (not the MI)"))
    return rows


def _rows_dp(privacy: dict[str, Any]) -> list[tuple[str, Any]]:
    spent = privacy.get("spent") or {}
    budget = privacy.get("budget") or {}
    return [
        ("guarantee", f"({fmt(spent.get('epsilon'))}, {fmt(spent.get('delta'), 'g')})-DP"),
        (
            "budget (target)",
            f"epsilon {fmt(budget.get('epsilon'), 'g')}, delta {fmt(budget.get('delta'), 'g')}",
        ),
        ("epsilon spent", fmt(spent.get("epsilon"))),
        ("neighbouring relation", privacy.get("neighbouring_relation")),
        ("accountant", privacy.get("accountant")),
        ("noise multiplier", fmt(privacy.get("noise_multiplier"))),
        ("batch", dp_batch_text(privacy)),
        ("denominator", dp_denominator_text(privacy)),
        ("membership-inference bound", fmt(privacy.get("posterior_bound"))),
        ("matched MI", f"{fmt(privacy.get('matched_mi'))} nats"),
    ]


_ROWS = {"pac": _rows_pac, "dp": _rows_dp, "none": lambda privacy: [("guarantee", "none")]}

# The Hub tags of each family.
TAGS = {"pac": ["pac-privacy"], "dp": ["differential-privacy"], "none": []}


def headline(privacy: dict[str, Any]) -> tuple[float | None, float | None]:
    """(MI in nats, epsilon) of a run as a table compares them: PAC's bound and matched
    epsilon, DP's matched MI and spent epsilon; none for a run without a guarantee."""
    return _HEADLINE[family(privacy)](privacy)


_HEADLINE = {
    "pac": lambda privacy: (privacy.get("mi_bound"), privacy.get("matched_epsilon")),
    "dp": lambda privacy: (privacy.get("matched_mi"), (privacy.get("spent") or {}).get("epsilon")),
    "none": lambda privacy: (None, None),
}


def fmt(value: Any, spec: str = ".4g") -> str | None:
    """A figure as the card shows it (None stays None: the row is left out)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format(value, spec)
