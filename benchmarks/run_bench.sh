#!/usr/bin/env bash
# The issue-8 bench: SmolLM2-135M, SST-2 pool 128, paczero-zpl, LoRA then full-parameter.
# Writes benchmarks/results/bench-{lora,full}.json and prints both tables.
# Extra arguments go to both runs, e.g. ./benchmarks/run_bench.sh --repeats 3 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PACZERO_DATA_DIR:=$(cd .. && pwd)/shared/data}"
export PACZERO_DATA_DIR
PY="${PY:-.venv/bin/python}"
mkdir -p benchmarks/results
for track in lora full; do
  "$PY" -m paczero.bench --track "$track" --json "benchmarks/results/bench-$track.json" "$@"
  echo
done
