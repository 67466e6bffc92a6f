"""Every input either works or is refused in one line (issue #18).

Each bad input goes through ``paczero.cli.main`` in-process and must end with exit status 2,
exactly one line on stderr, no traceback, and nothing left behind: the working directory
(where a default ``runs/`` would appear), the input files and the finished run the
commands read are byte-for-byte as they were.

The bad files of one's own data (a CSV naming a column twice, a row with more cells than
its header, a header-only CSV, an empty JSONL, a Parquet footer longer than its file, a
prompt with no {column}, an empty label word) are in the same kind of table beside the
own-data reader, ``tests/tasks/test_own_data.py`` (``CASES``), held to the same rules.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from paczero.cli import main

from sizes import small_run

SMALL = small_run("train.steps=4", "train.batch_size=8", "train.eval_every=2")
MI = ["mechanism.name=paczero-mi", "mechanism.subsets=4"]
DP = ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=4"]
DP += ["mechanism.epsilon=2", "mechanism.accountant=rdp"]
DEEP = "[" * 5000 + "]" * 5000  # the YAML composer would recurse 5000 deep
SQUAD = ["task.name=squad", "data.source=auto", "model.name=tiny-llama", "task.max_length=512"]


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "smoke", "--out", str(out), "--quiet", *sets(*SMALL)]) == 0
    return out


@pytest.fixture(scope="module")
def stopped_run(finished_run, tmp_path_factory):
    """The finished run as if stopped before its end: resumable."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    shutil.copytree(finished_run, out)
    (out / "result.json").unlink()
    return out


def _sst2(folder: Path, train: bytes, dev: bytes = b"sentence\tlabel\nfine \t1\n") -> None:
    (folder / "sst2").mkdir(parents=True)
    (folder / "sst2" / "train.tsv").write_bytes(train)
    (folder / "sst2" / "dev.tsv").write_bytes(dev)


def _squad(folder: Path, qa: dict | None = None, raw: bytes | None = None, context="Ctx.") -> None:
    (folder / "squad").mkdir(parents=True)
    qa = qa or {"id": "q1", "question": "What?", "answers": [{"text": "Ctx", "answer_start": 0}]}
    articles = [
        {"title": f"T{i}", "paragraphs": [{"context": context if i == 1 else "C.", "qas": [qa]}]}
        for i in range(4)
    ]
    data = raw if raw is not None else json.dumps({"version": "1.1", "data": articles}).encode()
    (folder / "squad" / "dev-v1.1.json").write_bytes(data)


GOOD_TSV = b"sentence\tlabel\n" + b"".join(b"a film %d \t%d\n" % (i, i % 2) for i in range(80))
NO_ANSWER = {"id": "q9", "question": "What?", "answers": []}
NUMBER_ANSWER = {"id": "q9", "question": "What?", "answers": [{"text": 7, "answer_start": 0}]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    (root / "latin1.yaml").write_bytes(b"description: caf\xe9\ntrain: {steps: 3}\n")
    (root / "list.yaml").write_text("- train\n- steps\n")
    (root / "broken.yaml").write_text("train: {steps: [1, 2\n")
    (root / "dir.yaml").mkdir()
    (root / "twice.yaml").write_text("train: {steps: 6, lr: 0.1}\ndata: {}\ntrain: {steps: 9}\n")
    (root / "deep.yaml").write_text(f"train: {DEEP}\n")
    (root / "deep-task.yaml").write_text(f"type: classification\nprompt: {DEEP}\n")
    (root / "deep-sweep.yaml").write_text(f"base: smoke\nseeds: {DEEP}\n")
    (root / "twice-sweep.yaml").write_text("base: smoke\nseeds: [0]\nseeds: [1]\n")
    (root / "a-file").write_text("not a folder\n")
    (root / "empty").mkdir()
    (root / "full").mkdir()
    (root / "full" / "mine.txt").write_text("keep me\n")
    _sst2(root / "tsv-train-bytes", GOOD_TSV.replace(b"a film 3", b"a film \xff3"))
    _sst2(root / "tsv-dev-bytes", GOOD_TSV, b"sentence\tlabel\nfine \xc3\x28 \t1\n")
    _sst2(root / "tsv-header", b"text\tlabel\nfine \t1\n")
    _sst2(root / "tsv-label", GOOD_TSV + b"a film \t2\n")
    _squad(root / "squad-bytes", raw=b'{"version": "1.1", "data": [{"title": "\xe9"}]}')
    _squad(root / "squad-json", raw=b'{"version": "1.1", "data": [')
    _squad(root / "squad-no-answer", NO_ANSWER)
    _squad(root / "squad-null-context", context=None)
    _squad(root / "squad-number-answer", NUMBER_ANSWER)
    _squad(root / "squad-no-data", raw=b'{"version": "1.1"}')
    _own_files(root)
    return root


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROW = '{"text": "I was charged twice.", "team": "billing"}'
JSONL = {  # issue 36 item 10: each names its line
    "trailing": f"{ROW}\n{ROW} x\n{ROW}\n",
    "array-line": f'{ROW}\n["a", "b"]\n{ROW}\n',
    "duplicate-key": f'{ROW}\n{{"text": "a", "text": "b", "team": "sales"}}\n{ROW}\n',
    "cut-last-line": f'{ROW}\n{ROW}\n{{"text": "I was ch',
}


def _own_files(root: Path) -> None:
    """Files of one's own data (issue 36 items 8-10)."""
    for name, text in JSONL.items():
        (root / f"{name}.jsonl").write_text(text)
        (root / f"sst-{name}.jsonl").write_text(text.replace('"text"', '"sentence"'))
    (root / "mixed").mkdir()
    (root / "mixed" / "a.jsonl").write_text('{"sentence": "fine"}\n')
    (root / "mixed" / "b.jsonl").write_text('{"other": [1, 2]}\n')
    (root / "rows.csv").write_text("sentence\nA fine film.\n")
    (root / "sentence-label.csv").write_text(
        "sentence,label\n" + "".join(f"a film {i},{i % 2}\n" for i in range(40))
    )
    (root / "empty-task.yaml").write_text("# nothing yet\n")
    (root / "own-empty-task.yaml").write_text(
        "model: {name: tiny-llama, device: cpu}\ntask: {file: empty-task.yaml}\n"
        "data: {train: sentence-label.csv}\n"
    )
    (root / "big.yaml").write_text("train: {steps: 2}\n" + "# padding\n" * 200_000)
    one = "customer,text,team\n" + "".join(f"c1,ticket {i},billing\n" for i in range(12))
    (root / "one-group.csv").write_text(one)
    killed = root / "killed"  # what a kill -9 inside RunDir.create leaves
    for folder in ("checkpoints", "private"):
        (killed / folder).mkdir(parents=True)
    (killed / ".lock").write_text("")
    (killed / ".run.json.ab12cd34").write_text("{")


def _snapshot(*folders: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            key = str(path)
            out[key] = (path.stat().st_mode, path.read_bytes() if path.is_file() else b"")
    return out


T = ["train", "smoke", "--quiet"]
OWN = ["train", str(EXAMPLES / "tickets.yaml"), "--quiet"]
OWN += sets("model.name=tiny-llama", "model.device=cpu", "train.steps=1")
# (id, argv, needle): {run} a finished run, {stopped} an unfinished one, {files} the input
# files, {tmp} a fresh folder.
CASES = [
    # ---- non-finite and overflowing numbers
    ("lr-inf", [*T, *sets("train.lr=.inf")], "'train.lr': Input should be a finite number"),
    ("lr-nan", [*T, *sets("train.lr=nan")], "'train.lr'"),
    ("lr-1e300", [*T, *sets("train.lr=1e300")], "'train.lr': must be at most 3.403e+38"),
    ("lr-negative", [*T, *sets("train.lr=-1")], "'train.lr'"),
    ("eps-inf", [*T, *sets("zo.eps=.inf")], "'zo.eps': Input should be a finite number"),
    ("eps-1e300", [*T, *sets("zo.eps=1e300")], "'zo.eps': must be at most"),
    ("budget-inf", [*T, *sets(*MI, "mechanism.budget=inf")], "'mechanism.budget'"),
    ("clip-inf", [*T, *sets(*DP[:-1], "mechanism.clip=inf")], "'mechanism.clip'"),
    ("epsilon-inf", [*T, *sets(*DP, "mechanism.epsilon=inf")], "'mechanism.epsilon'"),
    ("delta-1", [*T, *sets(*DP, "mechanism.delta=1")], "'mechanism.delta'"),
    ("match-mi-log2", [*T, *sets(*DP[:-2], "mechanism.match_mi=0.7")], "'mechanism.match_mi'"),
    ("budget-1e9", [*T, *sets(*MI, "mechanism.budget=1e9")], "at least log M = log 4"),
    ("budget-log-m", [*T, *sets(*MI, "mechanism.budget=1.3863")], "no protection"),
    # ---- wrong types
    ("task-name-list", [*T, *sets("task.name=[a]")], "invalid value for 'task.name'"),
    ("task-name-dict", [*T, *sets("task.name={a: 1}")], "invalid value for 'task.name'"),
    ("mechanism-list", [*T, *sets("mechanism.name=[a]")], "'mechanism.name'"),
    ("steps-true", [*T, *sets("train.steps=true")], "'train.steps': must be a number, not true"),
    ("steps-float", [*T, *sets("train.steps=2.0")], "'train.steps': must be a whole number"),
    ("steps-word", [*T, *sets("train.steps=1e3")], "'train.steps'"),
    ("steps-huge", [*T, *sets("train.steps=99999999999999999999")], "64-bit"),
    ("lr-true", [*T, *sets("train.lr=true")], "'train.lr': must be a number, not true"),
    ("seed-public-negative", [*T, *sets("seed.public=-1")], "'seed.public'"),
    ("seed-secret-negative", [*T, *sets("seed.secret=-5")], "'seed.secret'"),
    ("data-seed-negative", [*T, *sets("data.seed=-1")], "'data.seed'"),
    ("seed-too-large", [*T, *sets("seed.public=99999999999999999999")], "'seed.public'"),
    ("eval-at-start-1", [*T, *sets("train.eval_at_start=1")], "'train.eval_at_start'"),
    ("eval-at-start-word", [*T, *sets("train.eval_at_start=maybe")], "eval_at_start"),
    ("skip-all-zero-2", [*T, *sets("mechanism.skip_all_zero=2")], "skip_all_zero"),
    ("lora-rank-true", [*T, *sets("model.lora.rank=true")], "'model.lora.rank'"),
    ("batch-size-true", [*T, *sets("train.batch_size=true")], "'train.batch_size'"),
    ("batch-size-0", [*T, *sets("train.batch_size=0")], "'train.batch_size'"),
    ("num-train-0", [*T, *sets("data.num_train=0")], "'data.num_train'"),
    ("directions-0", [*T, *sets("zo.directions=0")], "'zo.directions'"),
    ("max-length-8", [*T, *sets("task.max_length=8")], "task.max_length (8) leaves 8 prompt"),
    ("squad-no-prompt-room", [*T, *sets(*SQUAD[:1], "task.max_length=100")], "max_new_tokens"),
    ("tokens-1", [*T, *sets("zo.micro_batch_tokens=1")], "zo.micro_batch_tokens (1) is below"),
    ("tokens-word", [*T, *sets("zo.micro_batch_tokens=some")], "'zo.micro_batch_tokens'"),
    # ---- enumerated strings
    ("device-gpu", [*T, *sets("model.device=gpu")], "'model.device': must be auto, cpu"),
    ("dtype-float8", [*T, *sets("model.dtype=float8")], "'model.dtype'"),
    ("template-fancy", [*T, *sets("task.template=fancy")], "task.template 'fancy'"),
    ("schedule-cosine", [*T, *sets("train.schedule=cosine")], "'train.schedule'"),
    ("mechanism-unknown", [*T, *sets("mechanism.name=dp-magic")], "unknown mechanism"),
    ("model-name-empty", [*T, *sets("model.name=")], "'model.name'"),
    (
        "subsets-odd",
        [*T, *sets("mechanism.name=paczero-zpl", "mechanism.subsets=3")],
        "must be even",
    ),
    ("foreign-key", [*T, *sets("mechanism.epsilon=2")], "'mechanism.epsilon' for mechanism 'mezo'"),
    # ---- keys
    ("unknown-key", [*T, *sets("train.stepz=3")], "unknown config key 'train.stepz'"),
    ("set-no-value", [*T, "--set", "train.steps"], "--set expects key=value"),
    ("section-as-value", [*T, *sets("train=5")], "'train'"),
    ("value-as-section", [*T, *sets("train.steps.x=1")], "'steps' is a value"),
    # ---- config files
    (
        "config-not-utf8",
        ["train", "{files}/latin1.yaml"],
        "line 1, column 17 (byte offset 16): byte 0xe9",
    ),
    ("config-list", ["train", "{files}/list.yaml"], "a config must be a YAML mapping"),
    ("config-broken", ["train", "{files}/broken.yaml"], "not valid YAML"),
    ("config-dir", ["train", "{files}/dir.yaml"], "is a directory"),
    ("config-missing", ["train", "{files}/missing.yaml"], "config file not found"),
    ("config-dev-null", ["train", "/dev/null"], "/dev/null is not a regular file"),
    ("recipe-unknown", ["train", "smok"], "did you mean 'smoke'"),
    # ---- YAML: each key once, nesting bounded, YAML 1.2 booleans, numbers without quotes
    ("config-key-twice", ["train", "{files}/twice.yaml"], "line 3: duplicate key 'train'"),
    ("config-deep", ["train", "{files}/deep.yaml"], "deep.yaml line 1: nesting deeper than 100"),
    ("task-file-deep", [*T, *sets("task.file={files}/deep-task.yaml")], "nesting deeper"),
    ("sweep-deep", ["sweep", "{files}/deep-sweep.yaml"], "nesting deeper than 100"),
    ("sweep-key-twice", ["sweep", "{files}/twice-sweep.yaml"], "duplicate key 'seeds'"),
    ("set-deep", [*T, *sets(f"train.batch_size={DEEP}")], "--set train.batch_size line 1: nest"),
    ("set-key-twice", [*T, *sets("train={steps: 2, steps: 3}")], "duplicate key 'steps'"),
    ("eval-at-start-yes", [*T, *sets("train.eval_at_start=yes")], "'train.eval_at_start'"),
    ("eval-at-start-on", [*T, *sets("train.eval_at_start=on")], "'train.eval_at_start'"),
    ("num-dev-quoted", [*T, *sets("data.num_dev='16'")], "'data.num_dev': must be a number, not"),
    ("lr-quoted", [*T, *sets("train.lr='0.1'")], "'train.lr': must be a number, not text"),
    ("lr-inf-word", [*T, *sets("train.lr=inf")], "'train.lr': must be a number, not text"),
    # ---- data files
    (
        "tsv-train-bytes",
        [*T, *sets("data.source=auto", "data.dir={files}/tsv-train-bytes")],
        "train.tsv line 5, column 8",
    ),
    (
        "tsv-dev-bytes",
        [*T, *sets("data.source=auto", "data.dir={files}/tsv-dev-bytes")],
        "dev.tsv line 2, column 6",
    ),
    (
        "tsv-header",
        [*T, *sets("data.source=auto", "data.dir={files}/tsv-header")],
        "line 1: expected the header",
    ),
    (
        "tsv-label",
        [*T, *sets("data.source=auto", "data.dir={files}/tsv-label")],
        "line 82: label must be 0 or 1",
    ),
    (
        "data-dir-missing",
        [*T, *sets("data.source=auto", "data.dir={files}/nowhere")],
        "does not exist",
    ),
    ("squad-bytes", [*T, *sets(*SQUAD, "data.dir={files}/squad-bytes")], "is not UTF-8"),
    ("squad-json", [*T, *sets(*SQUAD, "data.dir={files}/squad-json")], "not valid JSON"),
    (
        "squad-no-answer",
        [*T, *sets(*SQUAD, "data.dir={files}/squad-no-answer")],
        "(id 'q9') has no answers",
    ),
    (
        "squad-null-context",
        [*T, *sets(*SQUAD, "data.dir={files}/squad-null-context")],
        "paragraphs[0].context must be a string, got null",
    ),
    (
        "squad-number-answer",
        [*T, *sets(*SQUAD, "data.dir={files}/squad-number-answer")],
        "answers[0].text must be a string, got int",
    ),
    ("squad-no-data", [*T, *sets(*SQUAD, "data.dir={files}/squad-no-data")], "no 'data' list"),
    # ---- output directories
    ("out-under-file", [*T, "--out", "{files}/a-file/run"], "a-file is a file"),
    ("out-is-file", [*T, "--out", "{files}/a-file"], "is a file"),
    ("out-full", [*T, "--out", "{files}/full"], "already holds files"),
    ("out-a-run", [*T, "--out", "{run}"], "already holds a run"),
    ("out-empty", [*T, "--out="], "--out is empty; give a path"),
    ("export-to-empty", ["export", "{run}", "--to="], "--to is empty"),
    ("table-out-empty", ["table", "{run}", "--out="], "--out is empty"),
    ("plot-out-format", ["plot", "{run}", "--out", "{tmp}.foo"], "'.foo' is not an image format"),
    ("plot-out-nowhere", ["plot", "{run}", "--out", "{tmp}/no/p.png"], "does not exist"),
    ("audit-json-under-file", ["audit", "{run}", "--json", "{files}/a-file/a.json"], "a file"),
    ("audit-json-dir", ["audit", "{run}", "--json", "{files}/full"], "is a directory"),
    ("audit-plot-under-file", ["audit", "{run}", "--plot", "{files}/a-file/a.png"], "a file"),
    # ---- outputs never replace an existing file, a run's own above all (issue 36 item 3)
    ("table-out-release-log", ["table", "{run}", "--out", "{run}/releases.jsonl"], "exists"),
    ("table-out-exists", ["table", "{run}", "--out", "{files}/full/mine.txt"], "exists"),
    ("plot-out-run-png", ["plot", "{run}", "--out", "{run}/training.png"], "exists"),
    ("plot-out-run-folder", ["plot", "{run}", "--out", "{run}"], "training.png exists"),
    ("audit-json-release-log", ["audit", "{run}", "--json", "{run}/releases.jsonl"], "exists"),
    ("audit-plot-exists", ["audit", "{run}", "--plot", "{run}/training.png"], "exists"),
    ("bench-json-exists", ["bench", "--quick", "--json", "{run}/result.json"], "exists"),
    # ---- resume
    ("resume-missing", ["resume", "{tmp}/nowhere"], "not a paczero run directory"),
    ("resume-file", ["resume", "{files}/a-file"], "a-file is a file, not a paczero run"),
    ("resume-not-a-run", ["resume", "{files}/full"], "no config.yaml"),
    ("resume-finished", ["resume", "{run}"], "is a finished run"),
    ("resume-set-steps", ["resume", "{stopped}", *sets("train.steps=1")], "has taken 4 steps"),
    ("resume-set-eps", ["resume", "{stopped}", *sets("zo.eps=0.1")], "cannot change zo.eps"),
    ("resume-set-inf", ["resume", "{stopped}", *sets("train.lr=.inf")], "finite number"),
    # ---- export
    ("export-to-file", ["export", "{run}", "--to", "{files}/a-file"], "is a file"),
    ("export-under-file", ["export", "{run}", "--to", "{files}/a-file/x"], "a-file is a file"),
    ("export-to-full", ["export", "{run}", "--to", "{files}/full"], "is not empty"),
    ("export-step-word", ["export", "{run}", "--to", "{tmp}/x", "--step", "last"], "--step"),
    ("export-step-large", ["export", "{run}", "--to", "{tmp}/x", "--step", "99"], "outside"),
    ("export-step-negative", ["export", "{run}", "--to", "{tmp}/x", "--step=-1"], "outside"),
    ("export-no-run", ["export", "{tmp}/nowhere", "--to", "{tmp}/x"], "not a paczero run"),
    # ---- eval
    ("eval-missing", ["eval", "{tmp}/nowhere", *sets("data.source=synthetic")], "no such file"),
    ("eval-empty-dir", ["eval", "{files}/empty"], "holds no run (config.yaml), export"),
    ("eval-set-inf", ["eval", "{run}", *sets("train.lr=.inf")], "finite number"),
    ("eval-split", ["eval", "{run}", "--split", "train"], "invalid choice"),
    (
        "eval-bad-data",
        ["eval", "{run}", *sets("data.source=auto", "data.dir={files}/tsv-header")],
        "expected the header",
    ),
    # ---- privacy
    ("privacy-mi-inf", ["privacy", "--mi", "inf"], "'--mi': Input should be a finite number"),
    ("privacy-mi-nan", ["privacy", "--mi", "nan"], "'--mi': Input should be a finite number"),
    ("privacy-mi-1e6", ["privacy", "--mi", "1e6"], "must be below log 2"),
    ("privacy-mi-log2", ["privacy", "--mi", "0.6932"], "no protection"),
    ("privacy-mi-negative", ["privacy", "--mi", "-1"], "'--mi': must be >= 0"),
    ("privacy-mi-word", ["privacy", "--mi", "lots"], "invalid float value"),
    ("privacy-eps-0", ["privacy", "--epsilon", "0"], "'--epsilon': must be > 0"),
    ("privacy-eps-inf", ["privacy", "--epsilon", "inf"], "'--epsilon': Input should be a finite"),
    ("privacy-eps-negative", ["privacy", "--epsilon", "-2"], "'--epsilon': must be > 0"),
    ("privacy-delta-1", ["privacy", "--epsilon", "1", "--delta", "1"], "'--delta'"),
    ("privacy-delta-nan", ["privacy", "--epsilon", "1", "--delta", "nan"], "'--delta'"),
    ("privacy-both", ["privacy", "--mi", "0.1", "--epsilon", "1"], "not allowed with"),
    ("privacy-none", ["privacy"], "one of the arguments --mi --epsilon is required"),
    # ---- bench
    ("bench-repeats-0", ["bench", "--quick", "--repeats", "0"], "'--repeats'"),
    ("bench-threads-0", ["bench", "--quick", "--threads", "0"], "'--threads'"),
    ("bench-json-dir", ["bench", "--quick", "--json", "{files}/full"], "'--json': is a directory"),
    ("bench-json-under-file", ["bench", "--quick", "--json", "{files}/a-file/b.json"], "a file"),
    ("bench-pool-negative", ["bench", "--quick", "--pool", "-5"], "'--pool'"),
    ("bench-pool-1", ["bench", "--quick", "--pool", "1"], "'--pool'"),
    ("bench-warmup-negative", ["bench", "--quick", "--warmup", "-1"], "'--warmup'"),
    ("bench-micro-batch-0", ["bench", "--quick", "--micro-batch", "0"], "'--micro-batch'"),
    ("bench-subsets-odd", ["bench", "--quick", "--subsets", "3"], "must be even"),
    ("bench-device", ["bench", "--quick", "--device", "gpu"], "'--device'"),
    ("bench-nproc-0", ["bench", "--quick", "--nproc", "0"], "'--nproc'"),
    ("bench-set-inf", ["bench", "--quick", *sets("train.lr=inf")], "'train.lr'"),
    ("bench-repeats-word", ["bench", "--quick", "--repeats", "few"], "invalid int value"),
    # ---- demo and the command line itself
    ("demo-steps-0", ["demo", "--steps", "0", "--quiet"], "'train.steps'"),
    ("demo-pool-negative", ["demo", "--pool", "-1", "--quiet"], "'data.num_train'"),
    ("demo-mechanism", ["demo", "--mechanism", "nope", "--quiet"], "unknown mechanism"),
    ("no-command", [], "required: COMMAND"),
    # ---- issue 36 items 8-13: inputs that passed silently or misled
    ("set-train-empty", [*T, *sets("train=")], "--set train= is empty"),
    ("set-mechanism-empty", [*T, *sets("mechanism=")], "--set mechanism= is empty"),
    ("task-file-empty", ["train", "{files}/own-empty-task.yaml"], "empty-task.yaml is empty"),
    ("config-too-large", ["train", "{files}/big.yaml"], "big.yaml is 1.9 MB"),
    *[
        (f"jsonl-{name}", [*OWN, *sets(f"data.train={{files}}/{name}.jsonl")], f"{name}.jsonl line")
        for name in JSONL
    ],
    *[
        (
            f"predict-jsonl-{name}",
            ["predict", "{run}", "--data", f"{{files}}/sst-{name}.jsonl"],
            f"sst-{name}.jsonl line",
        )
        for name in JSONL
    ],  # fmt: skip
    ("predict-data-folder", ["predict", "{run}", "--data", "{files}/mixed"], "same columns"),
    (
        "one-group",
        [*OWN, *sets("data.train={files}/one-group.csv", "data.group_field=customer")],
        "every row of",
    ),
    (
        "one-group-all",
        [*OWN, *sets("data.train={files}/one-group.csv", "data.group_field=customer")]
        + sets("data.num_train=all"),
        "every row of",
    ),
    (
        "predict-other-model",
        ["predict", "{run}", "--data", "{files}/rows.csv"] + sets("model.name=tiny-opt"),
        "model.name is fixed",
    ),  # fmt: skip
    ("eval-other-model", ["eval", "{run}", *sets("model.name=tiny-opt")], "model.name is fixed"),
    ("eval-other-track", ["eval", "{run}", *sets("model.track=lora")], "model.track is fixed"),
    (
        "predict-other-template",
        ["predict", "{run}", "--data", "{files}/rows.csv"] + sets("task.template=review"),
        "task.template is fixed",
    ),  # fmt: skip
    ("predict-unfinished", ["predict", "{stopped}", "--data", "{files}/rows.csv"], "not finished"),
    ("eval-unfinished", ["eval", "{stopped}"], "not finished"),
    ("resume-killed-in-create", ["resume", "{files}/killed"], "start it again"),
    ("unknown-command", ["tune"], "invalid choice"),
    ("unknown-option", ["train", "--bogus"], "unrecognized arguments"),
]


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
    commands = {argv[0] for _, argv, _ in CASES if argv}
    assert {"train", "resume", "eval", "export", "privacy", "bench", "demo"} <= commands


@pytest.mark.parametrize(("argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(
    argv, needle, finished_run, stopped_run, files, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would show up here
    places = {"run": finished_run, "stopped": stopped_run, "files": files, "tmp": tmp_path / "tmp"}
    for name, path in places.items():
        argv = [arg.replace("{" + name + "}", str(path)) for arg in argv]
    if argv[:1] == ["train"] and not any(arg.startswith("--out") for arg in argv):
        argv += ["--out", str(tmp_path / "tmp" / "run")]
    before = _snapshot(tmp_path, finished_run, stopped_run, files)
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("paczero") and "error" in lines[0]
    assert "Traceback" not in err and "Traceback" not in out
    assert needle in lines[0]
    assert _snapshot(tmp_path, finished_run, stopped_run, files) == before  # nothing left


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """os.access is what check_new_run_dir asks; it answers for a read-only mount too (root
    writes through chmod, so the folder's answer is simulated here)."""
    parent = tmp_path / "ro"
    parent.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != parent and real(p, mode))
    assert main([*T, "--out", str(parent / "run"), *sets(*SMALL)]) == 2
    err = capsys.readouterr().err.strip()
    assert "ro is not writable" in err and "\n" not in err
    assert list(parent.iterdir()) == []


def test_a_folder_that_refuses_mkdir_is_one_line(tmp_path, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main([*T, "--out", str(tmp_path / "run"), *sets(*SMALL)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot create output directory" in err and "Permission denied" in err
    assert "\n" not in err and not (tmp_path / "run").exists()


def test_a_run_that_fails_in_set_up_removes_what_it_made(tmp_path, capsys, monkeypatch):
    """A failure after the directory exists but before the first release (here the step-0
    checkpoint hits a full disk) leaves nothing, and says so in one line."""
    import paczero.runs.directory

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "trainable.safetensors")

    monkeypatch.setattr(paczero.runs.directory, "save_safetensors", full)
    (tmp_path / "mine").mkdir()  # a folder the user made: kept, emptied
    for out in (tmp_path / "new" / "run", tmp_path / "mine"):
        assert main([*T, "--out", str(out), *sets(*SMALL)]) == 2
        err = capsys.readouterr().err.strip()
        assert "No space left on device" in err and "released nothing" in err
        assert "\n" not in err
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_squad_file_passes_the_reader_checks(files, tmp_path):
    """The fixture's SQuAD file is valid but for the one damaged field of each case."""
    from paczero.tasks.squad import read_squad_json

    good = tmp_path / "good"
    _squad(good)
    rows = read_squad_json(good / "squad" / "dev-v1.1.json")
    assert len(rows) == 4 and rows[0]["answers"] == ["Ctx"]
    shutil.rmtree(good)


def test_the_config_knows_every_task_template():
    """The config refuses an unknown template at validation, from the preset's own list
    (the task registry): every template a preset defines is accepted, no other."""
    from paczero.config import load_config
    from paczero.errors import UserError
    from paczero.tasks import PRESETS, squad, sst2

    assert {"sst2": tuple(sst2.TEMPLATES), "squad": tuple(squad.TEMPLATES)} == {
        name: preset.templates for name, preset in PRESETS.items()
    }
    for name, preset in PRESETS.items():
        sets = [f"task.name={name}", "data.source=auto"]
        for template in preset.templates:
            assert load_config(None, [*sets, f"task.template={template}"]).task.template == template
        with pytest.raises(UserError, match="task.template 'fancy' is not a template"):
            load_config(None, [*sets, "task.template=fancy"])


def test_plot_into_an_existing_folder_writes_inside_it_and_prints_the_path(
    finished_run, tmp_path, capsys
):
    assert main(["plot", str(finished_run), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"plot: {tmp_path / 'training.png'}"
    assert (tmp_path / "training.png").stat().st_size > 0
    assert not Path(f"{tmp_path}.png").exists()


def test_a_reader_that_leaves_the_pipe_is_a_quiet_exit(tmp_path, capsys, monkeypatch):
    """`paczero recipes | head -c 10`: exit 0, nothing on stderr (BrokenPipeError is an
    OSError: its branch comes first). The closed pipe is simulated: a real one closes in
    a race with Python's buffer."""

    class ClosedPipe:
        def __init__(self, fd: int):
            self.fd = fd

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return self.fd

    fd = os.open(tmp_path / "sink", os.O_WRONLY | os.O_CREAT)
    monkeypatch.setattr("sys.stdout", ClosedPipe(fd))
    try:
        assert main(["recipes"]) == 0
    finally:
        os.close(fd)
    assert capsys.readouterr().err == ""


ENOSPC = "Error while serializing: I/O error: No space left on device (os error 28)"


def test_a_full_disk_under_a_checkpoint_write_is_the_resume_line(tmp_path, capsys, monkeypatch):
    """safetensors raises its own SafetensorError: it reads as the OSError it wraps."""
    from safetensors import SafetensorError

    import paczero.runs.tensors

    real, run = paczero.runs.tensors.save_file, tmp_path / "run"

    def full_after_setup(*args, **kwargs):
        log = run / "releases.jsonl"
        if log.exists() and log.read_text():  # steps were released: the disk fills
            raise SafetensorError(ENOSPC)
        return real(*args, **kwargs)

    monkeypatch.setattr(paczero.runs.tensors, "save_file", full_after_setup)
    assert main([*T, "--out", str(run), *sets(*SMALL)]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "consistent up to its last logged step" in err
    assert err.endswith(f"paczero resume {run}") and "\n" not in err
    assert not list(run.rglob(".*.safetensors.*"))  # no half-written file
    monkeypatch.setattr(paczero.runs.tensors, "save_file", real)
    assert main(["resume", str(run), "--quiet"]) == 0


def test_a_full_disk_under_an_export_leaves_nothing(finished_run, tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    import paczero.durable

    def full(staging, *args, **kwargs):
        (staging / "model.safetensors").write_bytes(b"half")
        raise SafetensorError(ENOSPC)

    monkeypatch.setattr(paczero.durable, "write_export", full)
    assert main(["export", str(finished_run), "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"paczero: error: cannot write the export to {tmp_path / 'out'}: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_export_removes_its_staging_and_the_next_removes_a_killed_ones(
    finished_run, tmp_path, capsys, monkeypatch
):
    import signal

    import paczero.durable

    real = paczero.durable.write_export

    def signalled(staging, *args, **kwargs):
        (staging / "model.safetensors").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal did not stop the export")

    monkeypatch.setattr(paczero.durable, "write_export", signalled)
    out = tmp_path / "out"
    assert main(["export", str(finished_run), "--to", str(out), "--step", "final"]) == 143
    assert "export stopped by signal 15; nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

    killed = tmp_path / ".out.export-999999999-abc"  # no such process: left by a SIGKILL
    live = tmp_path / f".out.export-{os.getpid()}-def"  # an export still writing
    for folder in (killed, live):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    monkeypatch.setattr(paczero.durable, "write_export", real)
    assert main(["export", str(finished_run), "--to", str(out), "--step", "final"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]


def test_train_out_starts_again_in_what_a_kill_inside_create_left(files, tmp_path, capsys):
    """Issue 36 item 11: the folder that resume calls 'stopped while it was being created' is
    accepted by train --out (nothing was released there)."""
    out = tmp_path / "run"
    shutil.copytree(files / "killed", out)
    assert main([*T, "--out", str(out), *sets(*SMALL)]) == 0
    assert (out / "result.json").exists() and not list(out.glob(".run.json.*"))


def test_a_run_stopped_in_set_up_says_it_was_removed_not_resume(tmp_path, capsys, monkeypatch):
    """Issue 36 item 12: a signal during the first dev evaluation (before any release)
    removes the run; the line must not send the user to resume a folder that is gone."""
    import signal

    from paczero.errors import Interrupted
    from paczero.trainer import Trainer

    def stopped(self, step):
        raise Interrupted(self.run_dir.path, step, signal.SIGINT)

    monkeypatch.setattr(Trainer, "evaluate_dev", stopped)
    out = tmp_path / "run"
    assert main([*T, "--out", str(out), *sets(*SMALL)]) == 130
    err = capsys.readouterr().err.strip()
    assert "resume" not in err and "was removed" in err and "\n" not in err
    assert not out.exists()


def test_under_torchrun_a_refusal_is_said_once(capsys, monkeypatch):
    """Issue 36 item 13: every rank refuses the same input alike; rank 0 says it."""
    for rank, lines in (("1", 0), ("0", 1)):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", "smok"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == lines
