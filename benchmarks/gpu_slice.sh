#!/usr/bin/env bash
# One GPU window of the GPU study, in one command of at most $WINDOW seconds (default 540, 9 min):
#   (a) the first time (no bench JSON in $IN), `paczero bench` full and LoRA on the OPT-1.3B shape
#       ($OPT: a folder written by ../shared/gpu/mkopt.py; skipped when $OPT is unset);
#   (b) continues the tuning grid ($TUNE) and then the table ($TABLE) from the packs in $IN,
#       each sweep stopped cleanly before the window ends (paczero sweep --until: the step in
#       flight finishes, the run stays resumable from its log);
#   (c) leaves each study packed without tensors in $OUT (<study>.tar.gz; it holds private/,
#       the secret: carry it like a key), with the bench JSON, finished studies' tables, a log.
# Feed $OUT of one window as $IN of the next, in a fresh clone on a fresh machine; exit 0 when
# both studies are finished, 75 when there is more to do (run the next window), else the error.
#   OUT=$OUT IN=/tmp/in OPT=/tmp/opt-1.3b bash benchmarks/gpu_slice.sh
# Environment: WINDOW, IN, OUT, TUNE, TABLE (sweep specs; TABLE may be empty: the model they load
# is the spec's, e.g. its set: {model.name: /tmp/smol.gguf}), JOBS (runs at a time, default 1),
# OPT, PZ (how to call paczero), RESERVE (seconds kept for packing, default 20).
set -u
started=$(date +%s)
WINDOW=${WINDOW:-540}
IN=${IN:-}
OUT=${OUT:?set OUT, the folder this window leaves its packs in}
TUNE=${TUNE-sweeps/paper-table-smollm2-gpu-tune.yaml}
TABLE=${TABLE-sweeps/paper-table-smollm2-gpu.yaml}
JOBS=${JOBS:-1}
PZ=${PZ:-python3 -m paczero}
RESERVE=${RESERVE:-20}  # seconds kept for packing and copying at the end
mkdir -p "$OUT"
left() { echo $((started + WINDOW - RESERVE - $(date +%s))); }
log() { echo "=== $(date +%T) $*" | tee -a "$OUT/slice.log" >&2; }

# (a) the bench JSON, once
for t in full lora; do
  if [ -n "$IN" ] && [ -f "$IN/bench-$t.json" ]; then
    cp "$IN/bench-$t.json" "$OUT/"
  elif [ -n "${OPT:-}" ] && [ "$(left)" -gt 120 ]; then
    log "bench $t on $OPT"
    timeout $(($(left) / 2)) $PZ bench --model "$OPT" --track $t --device cuda --dtype float16 \
      --pool 1000 --subsets 126 --micro-batch 64 --repeats 3 --warmup 1 \
      --json "$OUT/bench-$t.json" >>"$OUT/slice.log" 2>&1 || log "bench $t: exit $?"
  fi
done

# (b) the studies, in order, until the window ends; (c) each one packed into $OUT
status=0
for spec in $TUNE $TABLE; do
  name=$(basename "$spec" .yaml)
  folder=runs/$name
  from=()
  if [ ! -e "$folder" ] && [ -n "$IN" ] && [ -f "$IN/$name.tar.gz" ]; then
    from=(--from "$IN/$name.tar.gz")
  fi
  budget=$(left)
  if [ "$budget" -lt 30 ]; then status=75; break; fi
  log "sweep $spec (${budget}s left)"
  $PZ sweep "$spec" --out "$folder" --jobs "$JOBS" --until "${budget}s" "${from[@]}" \
    >>"$OUT/slice.log" 2>&1
  status=$?
  log "sweep $spec: exit $status"
  if [ -e "$folder" ]; then
    $PZ pack "$folder" --to "$OUT/$name.tar.gz" >>"$OUT/slice.log" 2>&1
    [ $status -ne 0 ] || $PZ table "$folder" >"$OUT/$name.md" 2>>"$OUT/slice.log" || true
  fi
  [ $status -eq 0 ] || break  # the table waits for its tuning grid
done
# what this window did not touch goes on as it came
if [ -n "$IN" ]; then
  for f in "$IN"/*.tar.gz "$IN"/*.md; do
    [ -e "$f" ] && [ ! -e "$OUT/$(basename "$f")" ] && cp "$f" "$OUT/"
  done
fi
log "window done: exit $status ($(($(date +%s) - started)) s)"
exit $status
