"""`paczero`'s command line: every command and its options (argparse), for ``paczero.cli``,
which runs them. A refusal of the command line is one line, exit status 2."""

from __future__ import annotations

import argparse

from paczero.deadline import RESUMABLE


class _Parser(argparse.ArgumentParser):
    """argparse whose refusals are one line, like every other refusal (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_overrides(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    """The repeatable ``--set KEY=VALUE`` of every command that takes a config."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=text
    )


def build_parser() -> argparse.ArgumentParser:
    """Every command and its options."""
    parser = _Parser(
        prog="paczero",
        description="PAC-private zeroth-order fine-tuning of language models, forward passes only.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run_commands(sub)
    _add_model_commands(sub)
    _add_study_commands(sub)
    _add_other_commands(sub)
    return parser


def _add_run_commands(sub) -> None:
    """Commands that train: train, demo, bench, resume."""
    p = sub.add_parser("train", help="run one training run and write a run directory")
    p.add_argument("config", nargs="?", help="a recipe name (see `paczero recipes`) or a YAML file")
    _add_overrides(p, "override a config key, e.g. --set train.steps=20 (repeatable)")
    p.add_argument("--out", help="run directory (default runs/<time>-<task>-<mechanism>-<random>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_until(p, "; with --out, the same command continues the run")

    # The demo recipe's defaults, written out so that start-up need not load it (a test
    # keeps them equal to the recipe).
    p = sub.add_parser("demo", help="a private fine-tune of SmolLM2 on SST-2, end to end")
    p.add_argument("--steps", type=int, help="training steps (default 40)")
    p.add_argument("--mechanism", help="paczero-zpl (default), paczero-mi, mezo, ...")
    p.add_argument("--model", help="model name (default smollm2-135m)")
    p.add_argument("--pool", type=int, help="private pool size (default 32)")
    p.add_argument("--out", help="run directory")
    _add_overrides(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("bench", help="time a step against its floor (two forward passes)")
    from paczero.bench import add_arguments

    add_arguments(p)

    p = sub.add_parser("resume", help="continue a killed or interrupted run exactly")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_until(p)
    _add_overrides(
        p, "change train.lr, or train.steps (not for DP or PACZero-MI), from the next step on"
    )


def _add_model_commands(sub) -> None:
    """Commands on a run's model: export, eval, predict, prompt."""
    p = sub.add_parser("export", help="rebuild a run's model from the base model and its log")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--to", required=True, help="output folder (HF model or PEFT adapter)")
    p.add_argument("--step", default="best", help="best (default), final, or a step number")
    p.add_argument("--merge", action="store_true", help="LoRA: write the merged full model")
    p.add_argument(
        "--base", metavar="PATH", help="LoRA: a local copy of the base for the adapter to name"
    )
    p.add_argument(
        "--push-to-hub",
        metavar="REPO",
        help="then upload the folder to this Hugging Face model repo (huggingface_hub)",
    )
    p.add_argument("--private", action="store_true", help="with --push-to-hub: a private repo")

    p = sub.add_parser("eval", help="evaluate a run directory's dev-best model, or a base model")
    p.add_argument("target", help="a run directory, or a model name/path (zero-shot)")
    p.add_argument("--split", choices=("test", "dev"), default="test")
    _add_overrides(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", help="also write each row's prediction and label (a new JSONL file)")

    p = sub.add_parser(
        "predict", help="a run's model (or a base model) on new rows: labels or answers"
    )
    p.add_argument("target", help="a run directory, an export folder, or a model name (zero-shot)")
    p.add_argument("--data", required=True, help="rows with the prompt's fields (CSV, JSONL, ...)")
    p.add_argument("--out", help="JSON Lines file to write (a new file; default: print)")
    p.add_argument(
        "--batch-size", type=int, help="rows per forward pass (default train.eval_batch)"
    )
    _add_overrides(p)

    p = sub.add_parser("prompt", help="the prompt a model reads for a few rows (chat template too)")
    p.add_argument("target", help="a run or export folder, a recipe or YAML config, or a model")
    p.add_argument("--data", required=True, help="rows with the prompt's fields (CSV, JSONL, ...)")
    p.add_argument("--rows", type=int, default=3, help="how many rows to show (default 3)")
    _add_overrides(p)


def _add_until(p, more: str = "") -> None:
    p.add_argument(
        "--until",
        metavar="DURATION",
        help="stop cleanly before this long (90s, 10m, 1h30m; set-up and evaluation count) "
        f"and exit {RESUMABLE}, resumable{more}",
    )


def _add_study_commands(sub) -> None:
    """Commands over many runs: sweep, table, plot."""
    p = sub.add_parser("sweep", help="run a grid of configs and seeds (resumable, J at a time)")
    p.add_argument("spec", help="a sweep spec (YAML: base, set, grid, cells, seeds, out)")
    p.add_argument("--out", help="sweep directory (default: the spec's out)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument(
        "--threads", type=int, help="threads per run (default $OMP_NUM_THREADS, else cores // jobs)"
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state only")
    _add_until(p, "; the same command continues the sweep")
    p.add_argument(
        "--from",
        dest="from_pack",
        metavar="PACK",
        help="first unpack this `paczero pack` file where the sweep's folder goes (a study "
        "moved from another machine), then continue it",
    )

    p = sub.add_parser(
        "pack", help="a sweep or run folder without its tensors in one file, to move or continue"
    )
    p.add_argument("folder", help="a sweep (or run) directory")
    p.add_argument("--to", required=True, help="the .tar.gz to write (it holds private/: a key)")

    p = sub.add_parser("table", help="one row per sweep cell: mean +- std over seeds")
    p.add_argument("sweep_dir", help="a directory made by `paczero sweep`")
    p.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    p.add_argument(
        "--baseline", metavar="CELL", help="add each cell's test gain over CELL, paired by seed"
    )
    p.add_argument("--out", help="write to this file instead of stdout")

    p = sub.add_parser("plot", help="plot a sweep, or run directories side by side")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a sweep directory or run directories")
    p.add_argument("--out", help="PNG file (default: in the sweep or run directory)")
    p.add_argument(
        "--x",
        choices=("bound", "epsilon", "mi"),
        default="bound",
        help="sweep plot's privacy axis: MIA bound (default), epsilon, or MI",
    )


def _add_other_commands(sub) -> None:
    """audit, recipes, privacy."""
    p = sub.add_parser("audit", help="attack a run and hold what it learns against the guarantee")
    p.add_argument("target", help="a run directory (with --trials: or a recipe / YAML to repeat)")
    p.add_argument("--json", metavar="PATH", help="report (default RUN_DIR/private/audit.json)")
    p.add_argument("--plot", metavar="PATH", help="plot (default RUN_DIR/private/audit.png)")
    p.add_argument("--score", choices=("loss-drop", "alignment"), default="loss-drop")
    p.add_argument("--guesses", type=int, help="canaries: one fixed number of guesses")
    p.add_argument(
        "--passes",
        choices=("all", "informative"),
        help="forward passes at every step (default; checks the whole log) or only where a "
        "release depends on S* (default with --trials)",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="default 0.95")
    p.add_argument("--trials", type=int, help="repeat the run R times with fresh secrets")
    p.add_argument("--seed", type=int, help="with --trials: trial secrets seed, seed+1, ...")
    _add_overrides(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the attack beats the bound; a run without a bound is an error",
    )
    p.add_argument("--quiet", action="store_true", help="no per-trial progress")

    sub.add_parser("recipes", help="list the built-in recipes")

    p = sub.add_parser("privacy", help="MIA posterior bound of an MI budget or a DP epsilon")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--mi", type=float, help="mutual information budget in nats")
    group.add_argument("--epsilon", type=float, help="DP epsilon")
    p.add_argument("--delta", type=float, default=0.0, help="DP delta (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    for command in sub.choices.values():  # also after the command: `paczero train --debug`
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
