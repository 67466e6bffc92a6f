"""Your own data (issue #14): a CSV with three classes and a JSONL of prompt/completion pairs
run with PACZero-ZPL, PACZero-MI and DPZero without code (the shipped examples on a tiny
model); user-level privacy units; every bad input refused in one line before any model
loads, leaving no run directory; and the report saying which data the guarantee covers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import paczero.session
from paczero.cli import main
from paczero.config import ModelConfig, load_config
from paczero.engine.zo import ZOEstimator
from paczero.errors import UserError
from paczero.models import load_model
from paczero.session import Units, build_session, pool_losses
from paczero.tasks import build_task, row_schema
from paczero.tasks.own_data import own_splits

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICK = ["model.name=tiny-llama", "train.steps=2", "train.eval_at_start=false", "model.device=cpu"]
MECHANISMS = {  # the commands of docs/own-data.md
    "paczero-zpl": [],
    "paczero-mi": ["mechanism.name=paczero-mi", "mechanism.budget=0.3"],
    "dpzero": ["mechanism.name=dpzero", "mechanism.epsilon=2", "mechanism.expected_batch=4"]
    + ["mechanism.accountant=rdp"],
}


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _train(example: str, out: Path, *overrides: str) -> dict:
    argv = ["train", str(EXAMPLES / f"{example}.yaml"), "--out", str(out), "--quiet"]
    assert main([*argv, *sets(*QUICK, *overrides)]) == 0
    return json.loads((out / "result.json").read_text())


# ---------------------------------------------------------------- the examples, no code


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_the_ticket_csv_trains_with_three_classes(tmp_path, mechanism, capsys):
    result = _train("tickets", tmp_path / "run", *MECHANISMS[mechanism])
    assert result["config"]["task"]["type"] == "classification"
    assert result["config"]["task"]["label_words"] == {
        "billing": "Billing",
        "technical": "Technical support",
        "sales": "Sales",
    }
    assert set(result["metrics"]["test"]) == {"accuracy", "macro_f1", "loss"}
    assert result["metrics"]["metric"] == "accuracy"
    assert result["metrics"]["splits"] == {
        "pool": 10,
        "dev": 4,
        "test": 4,
        "provenance": "own data",
    }
    privacy = result["privacy"]
    assert privacy["mechanism"] == mechanism and privacy["data"]["level"] == "example-level"
    assert privacy["data"]["dev_from_pool_source"] is False  # tickets-dev.csv
    assert "covers the 10 rows of the pool only" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_the_prompt_completion_jsonl_trains(tmp_path, mechanism):
    result = _train("qa", tmp_path / "run", *MECHANISMS[mechanism])
    assert result["config"]["task"]["type"] == "generation"
    assert set(result["metrics"]["test"]) == {"f1", "exact_match", "completion_loss", "loss"}
    test = result["metrics"]["test"]
    assert test["loss"] == test["completion_loss"]  # objective ce: the completion's CE
    assert result["privacy"]["mechanism"] == mechanism


def test_the_examples_resolve_their_files_beside_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anywhere: the paths are relative to the config file
    cfg = load_config(str(EXAMPLES / "tickets.yaml"))
    assert cfg.data.train == str(EXAMPLES / "tickets.csv")
    assert cfg.data.dev == str(EXAMPLES / "tickets-dev.csv")
    assert cfg.task.file == str(EXAMPLES / "tickets-task.yaml")
    assert cfg.task.name == "tickets" and cfg.task.prompt == "Message: {text}\nTeam:"


def test_a_task_file_equals_the_same_keys_inline():
    inline = [
        "task.type=classification",
        "task.name=tickets",
        'task.prompt="Message: {text}\\nTeam:"',  # YAML reads \n in double quotes
        "task.label_field=team",
        "task.label_words={billing: Billing, technical: Technical support, sales: Sales}",
    ]
    data = [f"data.train={EXAMPLES / 'tickets.csv'}", "data.num_train=6", "data.num_dev=2"]
    data += ["data.num_test=2", "train.batch_size=full", "model.name=tiny-llama"]
    by_file = load_config(None, [f"task.file={EXAMPLES / 'tickets-task.yaml'}", *data])
    by_keys = load_config(None, [*inline, *data])
    assert by_file.task.model_copy(update={"file": None}) == by_keys.task
    # keys given beside the file win over the file's
    mine = load_config(
        None, [f"task.file={EXAMPLES / 'tickets-task.yaml'}", "task.name=mine", *data]
    )
    assert mine.task.name == "mine" and mine.task.label_field == "team"


# ---------------------------------------------------------------- user-level privacy units


USERS = "user,text,team\n" + "".join(
    f"u{u},message {i} of user {u},{['billing', 'technical', 'sales'][i % 3]}\n"
    for i, u in enumerate([1, 2, 3, 1, 4, 5, 2, 6, 7, 3, 8, 1, 4, 9, 10, 5])
)
DEV = "user,text,team\n" + "".join(
    f"d{i},dev message {i},{['billing', 'technical', 'sales'][i % 3]}\n" for i in range(6)
)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _task_keys(tmp_path: Path) -> list[str]:
    dev = _write(tmp_path, "dev.csv", DEV)
    task = EXAMPLES / "tickets-task.yaml"
    return [f"task.file={task}", f"data.dev={dev}", "data.num_dev=2", "data.num_test=2"]


def _units_of(splits) -> set[tuple]:
    """Each pool unit as the set of its rows' contents (a unit's identity)."""
    return {tuple(sorted(splits.pool[i]["text"] for i in unit)) for unit in splits.units}


def _splits(tmp_path: Path, text: str, **data):
    train = _write(tmp_path, "u.csv", text)
    keys = [*_task_keys(tmp_path), f"data.train={train}", "train.batch_size=2"]
    cfg = load_config(None, keys + [f"data.{k}={v}" for k, v in data.items()])
    return own_splits(cfg.data, row_schema(cfg.task)), cfg


def test_units_are_whole_users_in_pool_dev_and_test(tmp_path):
    text = USERS
    cfg = load_config(
        None,
        [
            f"task.file={EXAMPLES / 'tickets-task.yaml'}",
            f"data.train={_write(tmp_path, 'u.csv', text)}",
            "data.group_field=user",
            "data.num_train=6",
            "data.num_dev=2",
            "data.num_test=2",
            "train.batch_size=2",
        ],
    )
    splits = own_splits(cfg.data, row_schema(cfg.task))
    assert len(splits.units) == 6 and splits.unit_field == "user"
    assert sorted(np.concatenate(splits.units).tolist()) == list(range(len(splits.pool)))
    users = {
        part: {r["text"].rsplit(" ", 1)[1] for r in rows}
        for part, rows in (("pool", splits.pool), ("dev", splits.dev), ("test", splits.test))
    }
    for unit in splits.units:  # every row of a unit belongs to one user
        assert len({splits.pool[i]["text"].rsplit(" ", 1)[1] for i in unit}) == 1
    assert len(users["pool"]) == 6 and len(users["dev"]) == 2 and len(users["test"]) == 2
    assert not (users["pool"] & users["dev"] or users["pool"] & users["test"])  # never split
    assert splits.coverage()["level"] == "user-level"
    assert splits.dev_from_pool_source and splits.test_from_pool_source  # carved: not covered


def test_moving_one_users_rows_in_or_out_changes_exactly_one_unit(tmp_path):
    """The pool is the whole file (num_train = every user): removing all of user 3's rows
    (scattered through the file) removes exactly one unit, every other unit keeps the same
    rows; adding a new user's rows anywhere adds exactly one."""
    full, _ = _splits(tmp_path / "a", USERS, group_field="user", num_train=10)
    lines = USERS.splitlines(keepends=True)
    without = "".join(line for line in lines if not line.startswith("u3,"))
    less, _ = _splits(tmp_path / "b", without, group_field="user", num_train=9)
    assert _units_of(full) - _units_of(less) == {("message 2 of user 3", "message 9 of user 3")}
    assert _units_of(less) < _units_of(full)
    more_lines = lines[:3] + ["u11,new a of user 11,sales\n"] + lines[3:] + ["u11,new b,billing\n"]
    more, _ = _splits(tmp_path / "c", "".join(more_lines), group_field="user", num_train=11)
    assert _units_of(more) - _units_of(full) == {("new a of user 11", "new b")}
    assert _units_of(full) < _units_of(more)


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model()


def test_a_units_loss_and_derivative_are_the_means_of_its_rows(tmp_path, tiny):
    splits, cfg = _splits(tmp_path, USERS, group_field="user", num_train=8, num_dev=1, num_test=1)
    task = build_task(cfg.task, tiny.tokenizer)
    pool = task.encode(splits.pool)
    units = Units(tuple(splits.units), "user")
    chosen = np.array([5, 0, 3])
    rows, _ = units.expand(chosen)
    per_row = pool_losses(tiny.model, task, pool, np.arange(len(pool)), 4).double()
    per_unit = pool_losses(tiny.model, task, pool, chosen, 4, units=units)
    expected = torch.stack([per_row[torch.as_tensor(units.rows[u])].mean() for u in chosen])
    assert per_unit.dtype == torch.float32 and per_unit.shape == (3,)
    assert torch.allclose(per_unit.double(), expected, rtol=1e-6)
    # the estimator's derivative of a unit is the mean of its rows' derivatives
    est = ZOEstimator([p for _, p in tiny.trainable], 1e-2, restore="exact")
    by_row = est.estimate(7, lambda: pool_losses(tiny.model, task, pool, rows, 4)).derivatives
    by_unit = est.estimate(7, lambda: pool_losses(tiny.model, task, pool, chosen, 4, units=units))
    owner = np.repeat(np.arange(3), [len(units.rows[u]) for u in chosen])
    means = [by_row[owner == k].mean() for k in range(3)]
    assert np.allclose(by_unit.derivatives, means, rtol=1e-3, atol=1e-4)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("mechanism", ["paczero-zpl", "dpzero"])
def test_mechanisms_see_units_and_sample_them_whole(tmp_path, mechanism):
    """The mechanism's pool is the users: PACZero's membership matrix has one row per user
    (a user's rows are in the same candidate subsets), DP's Poisson sample picks users,
    and the optimizer's loss function gets whole users' rows."""
    train = _write(tmp_path, "u.csv", USERS)
    keys = [*_task_keys(tmp_path), f"data.train={train}", "data.group_field=user"]
    keys += ["data.num_train=10", "model.name=tiny-llama", "seed.secret=3"]
    if mechanism == "paczero-zpl":
        keys += ["train.batch_size=full", "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    else:
        keys += [*MECHANISMS["dpzero"], "mechanism.clip=5", "train.batch_size=3"]
    cfg = load_config(None, keys)
    from paczero.privacy.randomness import secret_stream

    secret, source = secret_stream(3)
    session = build_session(cfg, secret, source)
    assert session.pool_size == 10 and len(session.pool) == 16  # 10 users, 16 rows
    assert session.mechanism.pool_size == 10
    if mechanism == "paczero-zpl":
        assert session.mechanism._membership.shape == (10, 4)
    picked = []
    for step in range(6):
        chosen, secret_rows = session.optimizer.rows(step)
        assert secret_rows == (mechanism == "dpzero")
        assert chosen.max(initial=0) < 10
        rows, owner = session.units.expand(chosen)
        for k, unit in enumerate(chosen):  # all of the unit's rows, none of another's
            assert rows[owner == k].tolist() == session.units.rows[unit].tolist()
        picked.append(len(chosen))
    assert picked != [10] * 6 or mechanism == "paczero-zpl"


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("mechanism", ["paczero-zpl", "dpzero"])
def test_a_user_level_run_reports_its_unit(tmp_path, mechanism, capsys):
    extra = ["data.group_field=customer", "data.num_train=6", "mechanism.subsets=2"]
    if mechanism == "dpzero":
        extra = [*extra[:2], *MECHANISMS["dpzero"][:2], "mechanism.expected_batch=3"]
        extra += MECHANISMS["dpzero"][3:]
    result = _train("tickets", tmp_path / "run", *extra)
    data = result["privacy"]["data"]
    assert data["level"] == "user-level" and data["unit_field"] == "customer"
    assert data["pool_units"] == 6 and result["metrics"]["splits"]["pool"] == 6
    out = capsys.readouterr().out
    assert "user-level" in out and "The guarantee covers the 6 units of the pool only" in out


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_dev_set_carved_from_the_private_file_is_said_to_be_uncovered(tmp_path, capsys):
    result = _train(
        "tickets",
        tmp_path / "run",
        "data.dev=null",
        "data.num_train=6",
        "data.num_dev=2",
        "data.num_test=2",
        "train.select=dev-best",  # the opt-in; by default such dev rows pick nothing
    )
    data = result["privacy"]["data"]
    assert data["dev_from_pool_source"] and data["test_from_pool_source"]
    assert "dev-best model selection and the logged dev metrics are not covered" in data["note"]
    assert "separate dev file (data.dev)" in capsys.readouterr().out


# ---------------------------------------------------------------- bad input: one line, exit 2


def _files(root: Path) -> dict[str, Path]:
    good = (EXAMPLES / "tickets.csv").read_text()
    out = {
        "no-column": "customer,body,team\nc1,hello,billing\n",
        "bad-label": good + "c9,Where is my parcel?,shipping\n",
        "empty-text": good.replace("The export button does nothing in Firefox.", "  "),
        "one-group": "".join(good.splitlines(keepends=True)[:1])
        + "".join(f"c1,message {i},billing\n" for i in range(6)),
        "parse": "customer,text,team\nc1,a,billing\nc2,b,sales,extra\n",
        "header-twice": good.replace("customer,text,team", "text,text,team", 1),
        "five-cells": good + "c9,one,two,three,billing\n",
        "header-only": "customer,text,team\n",
    }
    paths = {k: _write(root, f"{k}.csv", v) for k, v in out.items()}
    latin = root / "latin1.csv"
    latin.write_bytes(good.encode().replace(b"Firefox", b"Firef\xf6x"))
    paths["latin1"] = latin
    good_qa = '{"prompt": "Capital of Chile?", "completion": "Santiago"}\n'
    paths["qa-empty"] = _write(
        root, "qa-empty.jsonl", '{"prompt": "Capital of Peru?", "completion": ""}\n' + good_qa
    )
    paths["qa-missing"] = _write(root, "qa-missing.jsonl", '{"prompt": "Peru?"}\n' * 2)
    paths["qa-stop"] = _write(
        root, "qa-stop.jsonl", good_qa + '{"prompt": "Two lines?", "completion": "one\\ntwo"}\n'
    )
    paths["qa-bytes"] = root / "qa-bytes.jsonl"
    paths["qa-bytes"].write_bytes(b'{"prompt": "caf\xe9?", "completion": "yes"}\n')
    paths["qa-none"] = _write(root, "qa-none.jsonl", "")
    paths["footer.parquet"] = root / "footer.parquet"  # metadata said to be 1.9 GB long
    paths["footer.parquet"].write_bytes(
        b"PAR1" + bytes(256) + (1_900_000_000).to_bytes(4, "little") + b"PAR1"
    )
    paths["notes.txt"] = _write(root, "notes.txt", "text\n")
    paths["task-list"] = _write(root, "task-list.yaml", "- type\n")
    paths["task-typo"] = _write(
        root, "task-typo.yaml", "type: classification\nprompt: '{text}'\nlabel_word: [a, b]\n"
    )
    return paths


T = ["train", "{examples}/tickets.yaml", "--quiet", "--set", "model.name=tiny-llama"]
Q = ["train", "{examples}/qa.yaml", "--quiet", "--set", "model.name=tiny-llama"]
TWO = ["data.num_train=2", "mechanism.subsets=2", "train.batch_size=1"]  # a two-row file
# (id, argv, needle): {files} the bad files, {examples} the shipped examples
CASES = [
    ("missing-file", [*T, *sets("data.train={files}/nope.csv")], "data.train file"),
    ("missing-dev-file", [*T, *sets("data.dev={files}/nope.csv")], "data.dev file"),
    (
        "missing-column",
        [*T, *sets("data.train={files}/no-column.csv")],
        "no-column.csv has no column 'text' (a field of task.prompt); its columns are: "
        "customer, body, team",
    ),
    (
        "missing-label-column",
        [*T, *sets("task.label_field=queue")],
        "has no column 'queue' (task.label_field); its columns are: customer, text, team",
    ),
    (
        "label-not-a-word",
        [*T, *sets("data.train={files}/bad-label.csv")],
        "bad-label.csv row 11: label 'shipping' (column 'team') is not one of the labels of "
        "task.label_words: billing, technical, sales",
    ),
    (
        "template-field",
        [*T, *sets("task.prompt='Subject: {subject}\nTeam:'")],
        "tickets.csv has no column 'subject' (a field of task.prompt)",
    ),
    (
        "empty-text",
        [*T, *sets("data.train={files}/empty-text.csv")],
        "row 10: column 'text' is empty",
    ),
    (
        "empty-completion",
        [*Q, *sets("data.train={files}/qa-empty.jsonl", *TWO)],
        "qa-empty.jsonl row 1: column 'completion' is empty",
    ),
    (
        "missing-completion",
        [*Q, *sets("data.train={files}/qa-missing.jsonl", *TWO)],
        "has no column 'completion' (task.completion_field); its columns are: prompt",
    ),
    (
        "stop-in-completion",
        [*Q, *sets("data.train={files}/qa-stop.jsonl", *TWO)],
        "holds the stop string '\\n' (task.stop)",
    ),
    (
        "undecodable-csv",
        [*T, *sets("data.train={files}/latin1.csv")],
        "latin1.csv line 11, column 44 (byte offset 642): byte 0xf6 is not UTF-8",
    ),
    (
        "undecodable-jsonl",
        [*Q, *sets("data.dev={files}/qa-bytes.jsonl")],
        "qa-bytes.jsonl line 1, column 16 (byte offset 15): byte 0xe9 is not UTF-8",
    ),
    (
        "too-few-rows",
        [*T, *sets("data.num_train=12")],
        "tickets.csv has 10 rows, fewer than data.num_train = 12; lower them",
    ),
    (
        "too-few-dev-rows",
        [*T, *sets("data.num_dev=6")],
        "tickets-dev.csv has 8 rows, fewer than data.num_dev + data.num_test = 10",
    ),
    (
        "too-few-units",
        [*T, *sets("data.group_field=customer")],
        "tickets.csv has 6 units (10 rows; a unit is the rows that share data.group_field "
        "'customer'), fewer than data.num_train = 10",
    ),
    (
        "one-group",
        [
            *T,
            *sets(
                "data.train={files}/one-group.csv",
                "data.group_field=customer",
                "data.num_train=2",
                "mechanism.subsets=2",
                "train.batch_size=2",
            ),
        ],
        "every row of {files}/one-group.csv has the same value ('c1')",
    ),
    (
        "group-column",
        [*T, *sets("data.group_field=patient")],
        "no column 'patient' (data.group_field)",
    ),
    ("unknown-format", [*T, *sets("data.train={files}/notes.txt")], "unknown format '.txt'"),
    (
        "unparsable-csv",
        [*T, *sets("data.train={files}/parse.csv", *TWO)],
        "parse.csv line 3: 4 cells under a header of 3 columns (customer, text, team)",
    ),
    (
        "csv-header-twice",
        [*T, *sets("data.train={files}/header-twice.csv")],
        "header-twice.csv line 1: the header names column 'text' twice",
    ),
    ("csv-five-cells", [*T, *sets("data.train={files}/five-cells.csv")], "line 12: 5 cells under"),
    ("csv-header-only", [*T, *sets("data.train={files}/header-only.csv")], "a header but no rows"),
    ("jsonl-empty", [*Q, *sets("data.train={files}/qa-none.jsonl")], "qa-none.jsonl is empty"),
    (
        "parquet-footer",
        [*T, *sets("data.train={files}/footer.parquet")],
        "footer.parquet is damaged: its footer claims 1900000000 bytes of metadata, the file "
        "has 268 bytes",
    ),
    ("prompt-no-field", [*T, *sets("task.prompt='Which team?'")], "task.prompt names no column"),
    (
        "label-word-empty",
        [*T, *sets("task.label_words={billing: '', sales: Sales}")],
        "'task.label_words': the label word of label 'billing' is empty",
    ),
    ("hub-offline", [*T, *sets("data.train=nobody/no-such-data")], "is not a local file or folder"),
    ("task-file-missing", [*T, *sets("task.file={files}/none.yaml")], "task file"),
    ("task-file-list", [*T, *sets("task.file={files}/task-list.yaml")], "a YAML mapping"),
    ("task-file-typo", [*T, *sets("task.file={files}/task-typo.yaml")], "'task.label_word'"),
    ("no-train", [*T, *sets("data.train=null", "data.dev=null")], "set data.train"),
    ("one-class", [*T, *sets("task.label_words=[only]")], "at least 2 classes"),
    ("prompt-braces", [*T, *sets("task.prompt='{}'")], "a field needs a column name"),
    ("preset-with-prompt", [*T, *sets("task.type=null", "task.name=sst2")], "task.prompt is a key"),
]


def test_the_bad_input_table_covers_every_case_of_the_issue():
    ids = {c[0] for c in CASES}
    item4 = {"missing-file", "missing-column", "label-not-a-word", "template-field", "empty-text"}
    item4 |= {"undecodable-csv", "too-few-rows", "one-group"}
    assert item4 <= ids and len(ids) == len(CASES)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(("argv", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_own_data_is_one_line_before_any_model_loads(
    argv, needle, files, tmp_path, capsys, monkeypatch
):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(paczero.session, "load_model", no_model)
    monkeypatch.chdir(tmp_path)
    root = str(files["no-column"].parent)
    argv = [a.replace("{files}", root).replace("{examples}", str(EXAMPLES)) for a in argv]
    out = tmp_path / "run"
    capsys.readouterr()
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle.replace("{files}", root) in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- sources through datasets


def _read(tmp_path: Path, train: Path, **data) -> list[dict]:
    cfg = load_config(
        None,
        [
            f"task.file={EXAMPLES / 'tickets-task.yaml'}",
            f"data.train={train}",
            "data.num_train=3",
            "data.num_dev=1",
            "data.num_test=1",
            "train.batch_size=1",
        ]
        + [f"data.{k}={v}" for k, v in data.items()],
    )
    return own_splits(cfg.data, row_schema(cfg.task))


def test_tsv_json_parquet_and_folders_read_the_same_rows(tmp_path):
    import pandas as pd

    rows = [
        {"customer": f"c{i}", "text": f'say "{i}", then {i}', "team": t}
        for i, t in enumerate(["billing", "sales", "technical", "sales", "billing"])
    ]
    frame = pd.DataFrame(rows)
    csv_path = tmp_path / "t.csv"
    frame.to_csv(csv_path, index=False)
    (tmp_path / "tsv").mkdir()
    tsv = tmp_path / "tsv" / "t.tsv"
    tsv.write_text(
        "customer\ttext\tteam\n"
        + "".join(f"{r['customer']}\t{r['text']}\t{r['team']}\n" for r in rows)
    )
    jsonl = _write(tmp_path, "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    array = _write(tmp_path, "t.json", json.dumps(rows))
    parquet = tmp_path / "t.parquet"
    frame.to_parquet(parquet)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame[:2].to_csv(folder / "a.csv", index=False)
    frame[2:].to_csv(folder / "b.csv", index=False)
    expected = _read(tmp_path, csv_path)
    for source in (tsv, jsonl, array, parquet, folder):
        got = _read(tmp_path, source)
        assert (got.pool, got.dev, got.test) == (expected.pool, expected.dev, expected.test), source
    assert {r["text"] for r in expected.pool + expected.dev + expected.test} <= {
        r["text"] for r in rows
    }  # quotes and commas survive


def test_cells_are_kept_as_written(tmp_path):
    """Cells "NA" and "null" are text, not missing values; numbers label as text."""
    path = _write(tmp_path, "n.csv", "text,team\nNA,0\nnull,1\nN/A,2\nnone,1\nnan,0\n")
    keys = ["task.type=classification", "task.prompt='{text} ->'", "task.label_field=team"]
    keys += ["task.label_words=[a, b, c]", f"data.train={path}", "data.num_train=3"]
    keys += ["data.num_dev=1", "data.num_test=1", "train.batch_size=1"]
    cfg = load_config(None, keys)
    splits = own_splits(cfg.data, row_schema(cfg.task))
    texts = {r["text"] for r in splits.pool + splits.dev + splits.test}
    assert texts == {"NA", "null", "N/A", "none", "nan"}


def test_a_private_file_leaves_no_copy_in_the_datasets_cache(tmp_path, monkeypatch):
    """datasets would keep an Arrow copy of the rows in its cache: paczero reads through a
    temporary cache, removed after."""
    import tempfile

    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    splits = _read(tmp_path, EXAMPLES / "tickets.csv")
    assert len(splits.pool) == 3
    assert not (tmp_path / "hf").exists() and list((tmp_path / "tmp").iterdir()) == []


def test_answers_lists_and_hub_style_answers(tmp_path):
    lines = [
        {"q": "Capital of Peru?", "answers": ["Lima", "lima"]},
        {"q": "Capital of Chile?", "answers": {"text": ["Santiago"], "answer_start": [0]}},
        {"q": "Capital of Kenya?", "answers": "Nairobi"},
    ]
    path = _write(tmp_path, "qa.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    cfg = load_config(
        None,
        [
            "task.type=generation",
            "task.prompt='Q: {q}\nA:'",
            "task.answers_field=answers",
            f"data.train={path}",
            "data.num_train=1",
            "data.num_dev=1",
            "data.num_test=1",
            "train.batch_size=1",
            "mechanism.name=mezo",  # a pool of one unit: no candidate subsets to hide in
        ],
    )
    splits = own_splits(cfg.data, row_schema(cfg.task))
    tok = load_model(ModelConfig(name="tiny-llama", device="cpu"), 0).tokenizer
    task = build_task(cfg.task, tok)
    enc = task.encode(splits.pool + splits.dev + splits.test)
    assert sorted(map(tuple, enc.golds)) == [("Lima", "lima"), ("Nairobi",), ("Santiago",)]
    assert {tok.decode(a) for a in enc.answers} == {" Lima\n", " Santiago\n", " Nairobi\n"}


def test_data_keys_of_own_data_need_data_train():
    with pytest.raises(UserError, match="data.group_field goes with data.train"):
        load_config(None, ["data.group_field=user"])
    with pytest.raises(UserError, match="data.dev goes with data.train"):
        load_config(None, ["data.dev=x.csv"])


def test_the_readme_commands_are_valid_runs():
    """Every `paczero train examples/...` command of the README and of the pages on own
    data and predictions resolves to a valid config."""
    import re
    import shlex

    from paczero.cli_parser import build_parser

    pages = ["README.md", "docs/own-data.md", "docs/predict.md"]
    text = "".join((EXAMPLES.parent / page).read_text() for page in pages)
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    commands = [
        line.split("#")[0]
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("paczero train examples/")
    ]
    assert len(commands) >= 5
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        cfg = load_config(str(EXAMPLES.parent / args.config), args.overrides)
        assert cfg.data.train and cfg.task.type in ("classification", "generation")


def test_audits_and_canaries_refuse_user_level_units(tmp_path):
    """The attacks and the canaries score single rows: a user-level run is refused."""
    from paczero.auditing.trials import trial_config
    from paczero.tasks.canaries import check_canary_config

    keys = [f"data.train={EXAMPLES / 'tickets.csv'}", "data.group_field=customer"]
    keys += ["data.num_train=6", "mechanism.subsets=2"]
    with pytest.raises(UserError, match="paczero audit scores one row at a time"):
        trial_config(EXAMPLES / "tickets.yaml", keys)
    cfg = load_config(str(EXAMPLES / "tickets.yaml"), keys)
    cfg.audit.canaries = 2
    with pytest.raises(UserError, match="do not go with data.group_field"):
        check_canary_config(cfg, uses_subsets=False)
