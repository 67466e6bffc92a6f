"""The write-ahead ledger: whole lines, a torn tail ignored, NaN refused."""

import pytest

from paczero.privacy.ledger import GENESIS, JsonlLog, LogError, read_chain, read_jsonl


def test_ledger_appends_whole_lines_and_survives_a_torn_tail(tmp_path):
    path = tmp_path / "releases.jsonl"
    with JsonlLog(path, durable=True) as log:
        log.append({"step": 0, "coeffs": [1.0]})
        log.append({"step": 1, "coeffs": [-1.0]})
    with open(path, "a") as handle:
        handle.write('{"step": 2, "coe')  # a crash mid-write
    assert [r["step"] for r in read_jsonl(path)] == [0, 1]


def test_ledger_refuses_nan(tmp_path):
    with JsonlLog(tmp_path / "x.jsonl") as log, pytest.raises(ValueError):
        log.append({"charge": float("nan")})


def test_a_chained_log_reopens_at_its_head_and_refuses_an_edited_line(tmp_path):
    path = tmp_path / "releases.jsonl"
    with JsonlLog(path, chained=True) as log:
        log.append({"step": 0})
    with JsonlLog(path, chained=True) as log:  # reopened: the chain continues from its head
        log.append({"step": 1})
    records = read_chain(path)
    assert records[0]["prev"] == GENESIS and records[1]["prev"] == records[0]["sha"]
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"step": 1', '"step": 2')
    path.write_text("".join(lines))
    with pytest.raises(LogError, match="line 2 was edited"):
        read_chain(path)


def test_a_chained_log_refuses_a_missing_line_and_a_repeated_step(tmp_path):
    path = tmp_path / "releases.jsonl"
    with JsonlLog(path, chained=True) as log:
        for step in range(3):
            log.append({"step": step})
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[2])
    with pytest.raises(LogError, match="line 2 does not follow"):
        read_chain(path)
    other = tmp_path / "other.jsonl"
    with JsonlLog(other, chained=True) as log:
        log.append({"step": 0})
        log.append({"step": 0})
    with pytest.raises(LogError, match="holds step 0 where step 1 belongs"):
        read_chain(other)
    assert len(read_chain(other, steps=False)) == 2
