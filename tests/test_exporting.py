"""Portable exports (issue #17 items 1-2): the adapter names the real base, a merged model,
the KV cache on, a model card with the privacy report, the upload folder checked offline,
the GGUF cache keyed by file hash and library versions."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from paczero import exporting, models
from paczero.cli import main
from paczero.durable import export
from paczero.errors import UserError
from paczero.trainer import train

from sizes import small_run

SMALL = small_run("train.steps=6", "train.eval_every=3")
MI = ["mechanism.name=paczero-mi", "mechanism.budget=0.3", "mechanism.subsets=8"]
MI += ["train.batch_size=full", "train.lr=0.05"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A base model as users have them: a plain HF folder (config.json + weights)."""
    folder = tmp_path_factory.mktemp("base") / "tiny-base"
    models.build_tiny_model("tiny-llama", 0).save_pretrained(folder)
    models.tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, base_dir):
    out = tmp_path_factory.mktemp("runs") / "lora"
    sets = [*SMALL, *MI, f"model.name={base_dir}", "model.track=lora", "model.lora.rank=2"]
    return train("smoke", out=out, overrides=sets, progress=False)


LOAD_ELSEWHERE = textwrap.dedent(
    """
    import json, sys
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, merged = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(adapter)
    ids = tok("the film was great . It was", return_tensors="pt")
    a = AutoPeftModelForCausalLM.from_pretrained(adapter)
    m = AutoModelForCausalLM.from_pretrained(merged)
    out = {}
    for name, model in (("adapter", a), ("merged", m)):
        gen = model.generate(**ids, max_new_tokens=4, do_sample=False,
                             return_dict_in_generate=True)
        out[name] = {"cache": model.config.use_cache and gen.past_key_values is not None,
                     "generation_cache": model.generation_config.use_cache,
                     "tokens": gen.sequences[0].tolist()}
        with torch.no_grad():
            out[name]["logits"] = model(**ids).logits[0, -1].tolist()
    out["paczero_imported"] = "paczero" in sys.modules
    print(json.dumps(out))
    """
)


def test_adapter_and_merged_model_load_elsewhere_with_plain_transformers(
    tmp_path, lora_run, base_dir
):
    adapter = export(lora_run.run_dir, tmp_path / "adapter", step="final")
    merged = export(lora_run.run_dir, tmp_path / "merged", step="final", merge=True)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir.resolve())  # never a cache
    assert adapter["base"]["kind"] == "local" and len(adapter["base"]["sha256"]) == 64
    assert merged["merged"] and merged["track"] == "full" and merged["trained_track"] == "lora"
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    log = (lora_run.run_dir / "releases.jsonl").read_bytes()
    import hashlib

    assert adapter["release_log"]["sha256"] == hashlib.sha256(log).hexdigest()
    assert adapter["release_log"]["prefix_lines"] == 6

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = elsewhere / "load.py"
    script.write_text(LOAD_ELSEWHERE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACZERO") and k != "PYTHONPATH"}
    env.update(HOME=str(elsewhere), PACZERO_CACHE_DIR="off", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "adapter"), str(tmp_path / "merged")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["paczero_imported"]
    for name in ("adapter", "merged"):
        assert out[name]["cache"] and out[name]["generation_cache"], name
    assert out["adapter"]["tokens"] == out["merged"]["tokens"]
    assert out["adapter"]["logits"] == pytest.approx(out["merged"]["logits"], abs=1e-4)


def test_full_parameter_export_keeps_the_kv_cache_on(tmp_path):
    run = train("smoke", out=tmp_path / "run", overrides=SMALL, progress=False).run_dir
    info = export(run, tmp_path / "full")
    assert info["base"] == {"kind": "seed-built", "id": "tiny-llama", "seed_public": 0,
                            "hub_id": None}  # fmt: skip
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    generation = json.loads((tmp_path / "full" / "generation_config.json").read_text())
    assert config["use_cache"] is True and generation["use_cache"] is True
    with pytest.raises(UserError, match="--merge is for LoRA runs"):
        export(run, tmp_path / "merged", merge=True)


def _card(folder):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


def test_the_model_card_carries_the_privacy_report(tmp_path, lora_run):
    export(lora_run.run_dir, tmp_path / "out")
    card = _card(tmp_path / "out")
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and "paczero" in data["tags"]
    assert "pac-privacy" in data["tags"] and "lora" in data["tags"]
    assert "base_model" not in data  # a local folder is no hub id
    assert "datasets" not in data  # synthetic data
    text = card.text
    privacy = lora_run.privacy
    assert "## Privacy" in text and "paczero-mi" in text
    assert "I(S*; releases) <= 0.3 nats" in text  # the budget is the guarantee
    assert f"{privacy['posterior_bound']:.4f}" in text
    assert f"{privacy['matched_epsilon']:.3g}" in text
    assert "**not** covered" in text and "The private pool only" in text
    assert "32 examples" in text  # the pool size
    assert f"{lora_run.test['accuracy']:.4g}" in text  # the test metric
    info = json.loads((tmp_path / "out" / "paczero_export.json").read_text())
    assert info["release_log"]["sha256"] in text and "paczero audit" in text
    charged = privacy["spent"]["charged"]
    assert f"{charged:.4g} nats (not the MI)" in text


@pytest.mark.filterwarnings("ignore:seed.secret")
def test_dp_and_nonprivate_cards_state_their_own_guarantee(tmp_path):
    dp_sets = ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=3",
               "mechanism.epsilon=2", "mechanism.accountant=rdp", "seed.secret=4"]  # fmt: skip
    dp = train("smoke", out=tmp_path / "dp", overrides=[*SMALL, *dp_sets], progress=False)
    export(dp.run_dir, tmp_path / "dp-out")
    card = _card(tmp_path / "dp-out")
    assert "differential-privacy" in card.data.to_dict()["tags"]
    spent = dp.privacy["spent"]["epsilon"]
    assert f"({spent:.4g}, 1e-05)-differential privacy" in card.text
    assert "add-or-remove-one" in card.text
    # the batch is a Poisson sample of expected size 3, not train.batch_size rows
    assert "| batch size | Poisson, expected 3 |" in card.text
    assert "expected size 3 (rate q = " in card.text and "train.batch_size is not used" in card.text
    assert "the expected batch q N = 3 (public; costs no epsilon)" in card.text
    mezo = train("smoke", out=tmp_path / "mezo", overrides=SMALL, progress=False)
    export(mezo.run_dir, tmp_path / "mezo-out", step="final")
    card = _card(tmp_path / "mezo-out")
    assert card.data.to_dict()["library_name"] == "transformers"
    assert "No privacy guarantee" in card.text


def test_push_to_hub_uploads_a_complete_folder(tmp_path, lora_run, monkeypatch, capsys):
    """Offline up to the upload: the folder handed to huggingface_hub is complete and valid."""
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            calls["files"] = exporting.check_upload_folder(kwargs["folder_path"])

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    to = tmp_path / "hub"
    argv = ["export", str(lora_run.run_dir), "--to", str(to), "--push-to-hub", "me/tiny-mi"]
    assert main([*argv, "--private"]) == 0
    assert "uploaded to https://huggingface.co/me/tiny-mi" in capsys.readouterr().out
    assert calls["create"] == ("me/tiny-mi", {"repo_type": "model", "private": True,
                                              "exist_ok": True})  # fmt: skip
    assert calls["upload"]["folder_path"] == str(to)
    files = set(calls["files"])
    assert {"README.md", "paczero_export.json", "adapter_config.json"} <= files
    assert any(f.startswith("adapter_model.") for f in files) and "tokenizer.json" in files
    assert not any("private" in f for f in files)

    # A folder that is not a complete export is refused before anything is uploaded.
    (to / "README.md").unlink()
    with pytest.raises(UserError, match="incomplete: no README.md"):
        exporting.push_to_hub(to, "me/tiny-mi")
    assert main(["export", str(lora_run.run_dir), "--to", str(tmp_path / "x"), "--private"]) == 2
    assert main(["export", str(lora_run.run_dir), "--to", str(tmp_path / "y"),
                 "--push-to-hub", "not a repo!"]) == 2  # fmt: skip
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_gguf_cache_is_keyed_by_file_hash_and_library_versions(tmp_path, monkeypatch):
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "cache"))
    loads = []
    tiny = models.build_tiny_model("tiny-llama", 0), models.tiny_tokenizer()

    def fake_convert(path):
        loads.append(path)
        return tiny

    monkeypatch.setattr(models, "_load_gguf", fake_convert)
    one, two = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for path, data in ((one, b"GGUF one"), (two, b"GGUF two")):
        path.parent.mkdir()
        path.write_bytes(data)
    f32 = models.DTYPES["float32"]
    _, _, first = models._load_gguf_cached(one, "gguf-model", f32)
    _, _, again = models._load_gguf_cached(one, "gguf-model", f32)
    _, _, other = models._load_gguf_cached(two, "gguf-model", f32)
    assert first.endswith(".gguf") and other.endswith(".gguf") and len(loads) == 2
    stamp = models._gguf_stamp(one)
    assert again == str(models.gguf_cache_dir(tmp_path / "cache", "gguf-model", stamp))
    assert stamp["sha256"] == __import__("hashlib").sha256(b"GGUF one").hexdigest()
    folders = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(folders) == 2 and all(stamp["transformers"] in f for f in folders)
    # Another install (another library version) never reuses or overwrites this cache.
    monkeypatch.setattr(models, "conversion_versions", lambda: {"transformers": "0.0",
                        "gguf": "0.0", "paczero": "0.0"})  # fmt: skip
    _, _, newer = models._load_gguf_cached(one, "gguf-model", f32)
    assert newer.endswith(".gguf") and len(loads) == 3
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 3


def test_base_identity_names_hub_models_and_gguf_sources(tmp_path, monkeypatch):
    class Loaded:
        source = "some/model"
        model = None

    hub = exporting.base_identity("some/model", Loaded, 0)
    assert hub["kind"] == "hub" and hub["id"] == hub["hub_id"] == "some/model"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"weights")
    local = exporting.base_identity(str(gguf), Loaded, 0)
    assert local["kind"] == "gguf" and local["id"] == str(gguf.resolve())
    assert local["gguf_sha256"] == __import__("hashlib").sha256(b"weights").hexdigest()
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: gguf)
    Loaded.source = str(tmp_path / "cache" / "smollm2")  # loaded through the cache
    smol = exporting.base_identity("smollm2-135m", Loaded, 0)
    assert smol["id"] == smol["hub_id"] == models.SMOLLM2_HUB_ID  # never the cache folder
    assert smol["gguf_file"] == "m.gguf" and smol["gguf_sha256"] == local["gguf_sha256"]


def test_large_file_hashes_are_remembered_and_stale_entries_dropped(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "cache"))
    small, large = tmp_path / "small.gguf", tmp_path / "large.gguf"
    small.write_bytes(b"s")
    large.write_bytes(b"x" * 64)
    monkeypatch.setattr(models, "HASH_MEMO_BYTES", 32)
    assert models.file_sha256(small) == hashlib.sha256(b"s").hexdigest()
    index = tmp_path / "cache" / models.HASH_INDEX
    assert not index.exists()  # a small file hashes at once: nothing remembered
    assert models.file_sha256(large) == hashlib.sha256(b"x" * 64).hexdigest()
    remembered = json.loads(index.read_text())
    assert list(remembered.values()) == [hashlib.sha256(b"x" * 64).hexdigest()]
    moved = tmp_path / "moved.gguf"
    large.rename(moved)
    models.file_sha256(moved)
    assert [k.split("|")[0] for k in json.loads(index.read_text())] == [str(moved.resolve())]


def test_the_runs_own_model_folder_is_portable_too(tmp_path, lora_run, base_dir):
    adapter = json.loads((lora_run.run_dir / "model" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(base_dir.resolve())
    run = train("smoke", out=tmp_path / "full", overrides=SMALL, progress=False).run_dir
    assert json.loads((run / "model" / "config.json").read_text())["use_cache"] is True


def test_an_adapter_can_name_a_local_copy_of_its_base(tmp_path, lora_run, base_dir, capsys):
    """--base PATH: the adapter names that folder (it loads offline), pinned by its hash;
    the card takes the base's license from the folder's own card and the test figures as
    model-index results, and shows no local path."""
    (base_dir / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a base\n")
    copy = tmp_path / "copy-of-base"
    import shutil

    shutil.copytree(base_dir, copy)
    argv = ["export", str(lora_run.run_dir), "--to", str(tmp_path / "out"), "--base", str(copy)]
    assert main(argv) == 0
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(copy.resolve())
    info = json.loads((tmp_path / "out" / "paczero_export.json").read_text())
    assert info["base"]["kind"] == "local" and len(info["base"]["sha256"]) == 64
    assert "portability" not in info and "portable" not in capsys.readouterr().out
    card = _card(tmp_path / "out")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"
    result = data["model-index"][0]["results"][0]
    accuracy = next(m for m in result["metrics"] if m["type"] == "accuracy")
    assert accuracy["value"] == pytest.approx(lora_run.test["accuracy"])
    assert str(tmp_path) not in card.text and str(base_dir) not in card.text
    with pytest.raises(UserError, match="not a model folder"):
        export(lora_run.run_dir, tmp_path / "bad", base=tmp_path)
    with pytest.raises(UserError, match="drop it with --merge"):
        export(lora_run.run_dir, tmp_path / "bad2", merge=True, base=copy)


def test_a_tiny_model_adapter_says_only_merge_is_portable(tmp_path, capsys):
    sets = [*SMALL, "model.track=lora", "model.lora.rank=2", "mechanism.name=mezo"]
    run = train("smoke", out=tmp_path / "run", overrides=sets, progress=False).run_dir
    assert main(["export", str(run), "--to", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("note: the adapter's base tiny-llama is a seed-built test model")
    assert "only --merge is portable" in out[-1]
    card = _card(tmp_path / "out").text
    assert "a seed-built test model" in card and "nothing else loads it" in card
    # the run's own model/ folder carries paczero's card, not PEFT's empty one
    own = _card(run / "model")
    assert "paczero" in own.data.to_dict()["tags"] and "## Privacy" in own.text
    assert "base_model:adapter" not in own.text and str(tmp_path) not in own.text
    smol = exporting.portability_note(
        {"kind": "gguf", "hub_id": models.SMOLLM2_HUB_ID, "gguf_file": "m.gguf"}, True, False
    )
    assert "--base PATH" in smol and "--merge writes a whole model" in smol
    assert "the card's snippet loads that file" in smol
    assert exporting.portability_note({"kind": "gguf", "hub_id": "x/y"}, True, True) is None
