"""`paczero ...`: parse, call, print. Bad input exits 2 with one line (no traceback)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from paczero import deadline
from paczero.cli_parser import build_parser
from paczero.deadline import RESUMABLE
from paczero.errors import Interrupted, UserError
from paczero.threads import MODEL_COMMANDS, threads_fitted_to_load

STARTED = time.monotonic()  # an --until deadline counts from here: set-up counts


def _quiet_libraries() -> None:
    """Our progress and one-line errors are what a user reads (``paczero.quiet``)."""
    from paczero.quiet import quiet_libraries

    quiet_libraries()


def _check_config_path(source: str | None) -> None:
    """A config path that exists but is not a file or folder (``/dev/null``, a pipe)."""
    exists = source is not None and os.path.exists(source)
    if exists and not (os.path.isfile(source) or os.path.isdir(source)):
        raise UserError(f"config file {source} is not a regular file; give a YAML file")


def _check_output_file(option: str, value: str | None) -> None:
    """An output file that cannot be written is refused before the work that fills it."""
    if value is None:
        return
    path = Path(value)
    if path.is_dir():
        raise UserError(f"{option} {value} is a directory; give a file path")
    parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not parent.is_dir():
        raise UserError(f"{option} {value} cannot be written: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {value} cannot be written: {parent} is not writable")
    if path.exists() or path.is_symlink():  # a run's own file, or anything else: kept
        raise UserError(f"{option} {value} exists; choose another name or remove it first")


# Options that name a path: an empty value (``--out=``) would mean the current folder.
PATH_OPTIONS = {
    "out": "--out",
    "to": "--to",
    "json": "--json",
    "json_path": "--json",
    "plot": "--plot",
}


def _check_path_options(args: argparse.Namespace) -> None:
    for name, option in PATH_OPTIONS.items():
        if getattr(args, name, None) == "":
            raise UserError(f"{option} is empty; give a path")


def cmd_train(args: argparse.Namespace) -> int:
    from paczero.trainer import train

    if args.config is None:  # not the default multi-hour run: how to start one
        _usage_and_recipes("train")
        return 2
    _check_config_path(args.config)
    _quiet_libraries()
    with deadline.until(_duration(args), STARTED):
        if args.until and args.out and (Path(args.out) / "config.yaml").exists():
            return _continue_run(args, train)  # the same command, again: continue the run
        result = train(args.config, out=args.out, overrides=args.overrides, progress=not args.quiet)
    if _rank() == 0:  # under torchrun, rank 0 reports for the run
        print(result)
    return 0


def _duration(args: argparse.Namespace) -> float | None:
    return None if args.until is None else deadline.parse_duration(args.until)


def _continue_run(args: argparse.Namespace, train) -> int:
    """``train --until --out DIR`` where DIR holds a run of this very config: resume it (or
    say it is finished); a run of another config is refused."""
    from paczero.config import load_config
    from paczero.durable import resume

    out = Path(args.out)
    ours = load_config(args.config, args.overrides).public_dict()
    if load_config(str(out / "config.yaml")).public_dict() != ours:
        raise UserError(
            f"{out} holds a run of another config; choose another --out (or paczero resume {out})"
        )
    if (out / "result.json").exists():
        print(f"{out} is finished (result.json exists); nothing to continue", file=sys.stderr)
        return 0
    if not (out / "releases.jsonl").exists() or not (out / "releases.jsonl").stat().st_size:
        import shutil  # stopped in set-up, before any release: nothing to keep, start again

        shutil.rmtree(out)
        result = train(args.config, out=out, overrides=args.overrides, progress=not args.quiet)
        if _rank() == 0:
            print(result)
        return 0
    result = resume(out, progress=not args.quiet)
    if _rank() == 0:
        print(result)
    return 0


def _usage_and_recipes(command: str) -> None:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    print(sub.choices[command].format_usage().rstrip(), file=sys.stderr)
    print(
        f"paczero {command}: error: give a recipe or a YAML config, e.g. `paczero train "
        "smoke` (seconds) or `paczero train examples/tickets.yaml`; the recipes:",
        file=sys.stderr,
    )
    _print_recipes(sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    from paczero.demo import run_demo

    _quiet_libraries()
    options = {"steps": args.steps, "mechanism": args.mechanism, "model": args.model}
    _, _, text = run_demo(
        out=args.out,
        progress=not args.quiet,
        pool=args.pool,
        overrides=args.overrides,
        **options,
    )
    print(text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from paczero.bench import check_args, format_table, run_bench

    check_args(args)  # before any subprocess starts
    _quiet_libraries()
    if args.compare:
        from paczero.bench.compare import format_compare, run_compare

        result = run_compare(args)
        print(format_compare(result))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    if args.nproc > 1:
        from paczero.bench.parallel import format_parallel, run_parallel_bench

        result = run_parallel_bench(args)
        print(format_parallel(result))
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    print(format_table(run_bench(args)))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from paczero.durable import resume

    _quiet_libraries()
    with deadline.until(_duration(args), STARTED):
        result = resume(args.run_dir, progress=not args.quiet, overrides=args.overrides)
    if _rank() == 0:
        print(result)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from paczero.durable import export

    _quiet_libraries()
    if args.private and not args.push_to_hub:
        raise UserError("--private goes with --push-to-hub REPO")
    if args.push_to_hub:
        from paczero.exporting import check_repo_id

        check_repo_id(args.push_to_hub)  # before the export is written
    info = export(args.run_dir, args.to, step=args.step, merge=args.merge, base=args.base)
    what = "merged model" if info.get("merged") else info.get("track", "model")
    print(f"exported step {info['step']} of {info['run']} to {args.to} ({what}, model card)")
    if info.get("portability"):
        print(info["portability"])
    if info["step"] == 0:
        print(
            "paczero: warning: step 0 is the untrained base model (no step beat it on dev); "
            "export --step final for the trained one",
            file=sys.stderr,
        )
    if args.push_to_hub:
        from paczero.exporting import push_to_hub

        url = push_to_hub(args.to, args.push_to_hub, private=args.private)
        print(f"uploaded to {url}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from paczero.evaluation import evaluate

    _quiet_libraries()

    metrics = evaluate(args.target, split=args.split, overrides=args.overrides, out=args.out)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{args.target} [{args.split}, {metrics['examples']} examples]: {shown}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from paczero.prediction import accuracy, predict, target_selection
    from paczero.selection import describe

    _quiet_libraries()
    records = predict(
        args.target, args.data, out=args.out, overrides=args.overrides, batch_size=args.batch_size
    )
    selection = target_selection(args.target)
    if selection is not None:
        print(f"paczero: {describe(selection)}", file=sys.stderr)
    if args.out:
        print(f"wrote {len(records)} predictions to {args.out}")
    else:
        for record in records:
            print(json.dumps(record, ensure_ascii=False, default=str))
    scored = accuracy(records)
    if scored is not None:  # on stderr: stdout stays JSON Lines
        right, labelled = scored
        print(
            f"accuracy {right / labelled:.4f} ({right} of {labelled} rows with a label)",
            file=sys.stderr,
        )
    return 0


def cmd_prompt(args: argparse.Namespace) -> int:
    from paczero.prompts import show_prompts

    _quiet_libraries()
    print(show_prompts(args.target, args.data, rows=args.rows, overrides=args.overrides))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from paczero.studies.scheduler import run_sweep
    from paczero.studies.spec import load_spec

    sweep = load_spec(args.spec, out=args.out)
    if args.from_pack:
        from paczero.studies.pack import unpack

        unpack(args.from_pack, sweep.path)
    if args.jobs == 1 and not args.dry_run:
        _quiet_libraries()  # runs in this process
    with deadline.until(None if args.dry_run else _duration(args), STARTED):
        summary = run_sweep(sweep, jobs=args.jobs, threads=args.threads, dry_run=args.dry_run)
    if not args.dry_run:
        print(f"table: paczero table {sweep.path}; plot: paczero plot {sweep.path}")
    return 1 if summary.failed else 0


def cmd_pack(args: argparse.Namespace) -> int:
    from paczero.studies.pack import pack

    done = pack(args.folder, args.to)
    print(
        f"{args.to}: {args.folder} without tensors, {done['files']} files, {done['bytes']} bytes "
        "(it holds private/, the secret: carry it like a key)"
    )
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from paczero.studies.tables import table

    _check_output_file("--out", args.out)  # never over an existing file (a release log)
    text = table(args.sweep_dir, fmt=args.format, baseline=args.baseline)
    if args.out:
        with open(args.out, "x") as handle:  # created now: not there a moment ago
            handle.write(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from paczero.studies.plots import plot

    print(f"plot: {plot(args.paths, out=args.out, x=args.x)}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from paczero.auditing import audit, audit_trials

    for option, value in (("--json", args.json), ("--plot", args.plot)):
        _check_output_file(option, value)
    _quiet_libraries()
    options = {
        "score": args.score,
        "guesses": args.guesses,
        "confidence": args.confidence,
        "json_path": args.json,
        "plot_path": args.plot,
        "require_bound": args.check,
    }
    if args.passes is not None:
        options["passes"] = args.passes
    if args.trials is not None:
        seeds = None if args.seed is None else [args.seed + i for i in range(args.trials)]
        report = audit_trials(
            args.target, args.trials, overrides=args.overrides, seeds=seeds,
            progress=not args.quiet, **options,
        )  # fmt: skip
    else:
        if args.overrides or args.seed is not None:
            raise UserError("--set and --seed go with --trials (a run directory is audited as is)")
        report = audit(args.target, **options)
    print(report)
    return 1 if args.check and report.verdict == "violation" else 0


def cmd_recipes(args: argparse.Namespace) -> int:
    _print_recipes(sys.stdout)
    return 0


def _print_recipes(out) -> None:
    from paczero.config import recipe_names, recipe_text
    from paczero.textfiles import load_yaml

    names = recipe_names()
    width = max(map(len, names), default=0)
    for name in names:
        description = (load_yaml(recipe_text(name), name) or {}).get("description", "")
        print(f"{name:<{width}}  {description}", file=out)


def cmd_privacy(args: argparse.Namespace) -> int:
    from paczero.options import PrivacyArgs, validate_options
    from paczero.privacy.bounds import describe_summary, privacy_summary

    validate_options(PrivacyArgs, vars(args))
    try:
        summary = privacy_summary(mi=args.mi, epsilon=args.epsilon, delta=args.delta)
    except ValueError as err:
        raise UserError(str(err)) from None
    print(json.dumps(summary, indent=2) if args.json else describe_summary(summary))
    return 0


COMMANDS = {
    "train": cmd_train,
    "demo": cmd_demo,
    "bench": cmd_bench,
    "resume": cmd_resume,
    "export": cmd_export,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "prompt": cmd_prompt,
    "sweep": cmd_sweep,
    "pack": cmd_pack,
    "table": cmd_table,
    "plot": cmd_plot,
    "recipes": cmd_recipes,
    "privacy": cmd_privacy,
    "audit": cmd_audit,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0") or 0)


def _ranked(message: str) -> str:
    return message if _rank() == 0 else f"[rank {_rank()}] {message}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # a refusal, already printed on one line (--help exits 0)
        if done.code in (0, None):
            raise
        return done.code if isinstance(done.code, int) else 2
    if not args.debug:
        warnings.filterwarnings("ignore", module="transformers|peft|torch")
    try:
        _check_path_options(args)
        if args.command in MODEL_COMMANDS:  # a busy machine: fewer threads run faster
            with threads_fitted_to_load():
                return COMMANDS[args.command](args)
        return COMMANDS[args.command](args)
    except UserError as err:
        if args.debug:
            raise
        # Under torchrun every rank reads the same input and refuses it alike: rank 0 says
        # it, once. A failure of a rank's own (a full disk there) is an OSError, below.
        if _rank() == 0:
            print(f"paczero: error: {_one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:  # e.g. `paczero recipes | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # the machine refused (disk full, permissions): still one line
        if args.debug:
            raise
        where = f": {err.filename}" if err.filename else ""
        text = f"{_one_line(err.strerror or str(err))}{where}"
        print(f"paczero: error: {_ranked(text)}", file=sys.stderr)  # this rank's machine
        return 2
    except Interrupted as err:
        if deadline.reached():
            if _rank() == 0:
                print(deadline.stopped_line(" ".join(["paczero", *sys.argv[1:]])), file=sys.stderr)
            if argv is None:  # the program (not a caller's main([...])): the interpreter's
                sys.stdout.flush()  # teardown takes seconds the deadline does not have; the
                sys.stderr.flush()  # run's files are closed and synced by now
                os._exit(RESUMABLE)
            return RESUMABLE
        if _rank() == 0:
            print(f"paczero: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("paczero: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
