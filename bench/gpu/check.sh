#!/usr/bin/env bash
# The GPU proof of the CUDA path (H100/H200), prepared so that a session with a lent GPU spends its
# few device minutes running, not writing. Run in the repository root on the GPU machine:
#   bash bench/gpu/check.sh build tests sanitize      (first call, about 8 minutes)
#   bash bench/gpu/check.sh build bench               (second call, while the machine is warm)
# Stages: build (pip install -e ., the visible GPU's arch), tests (the whole suite with CUDA visible,
# junit, then python -m maskattn check), sanitize (compute-sanitizer memcheck, racecheck, synccheck
# and initcheck over bench/gpu/kernel_cases.py; "refused" where the runtime refuses the device),
# bench (softmax and masks with the report, then attention with the plot). Every stage runs under
# its own time limit and the next one runs even if it failed. Logs live in build/gpu (kept between
# calls while the machine stays warm: the bench report reads the tests' junit and the sanitizer's
# results from there); this call's files are copied to $OUT at the end, at most 8 (the device tool
# brings back no more); the last lines printed are the summary.
set -uo pipefail
cd "$(dirname "$0")/../.."
KEEP=build/gpu
mkdir -p "$KEEP"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)"
summary="$KEEP/summary.txt"
: > "$summary"
made=("$summary")  # this call's files, for $OUT
note() { echo "$*" | tee -a "$summary"; }

stage_build() {
  local t=$SECONDS
  MAX_JOBS="${MAX_JOBS:-16}" timeout 420 python3 -m pip install --no-build-isolation --no-deps -e . > "$KEEP/build.log" 2>&1
  local rc=$?
  note "build: rc=$rc in $((SECONDS - t)) s"
  python3 -c "import json, maskattn; i = maskattn.build_info(); print(json.dumps({k: i.get(k) for k in ('backends', 'cuda_archs', 'torch', 'torch_cuda', 'cuda_available')}))" 2>&1 | tee -a "$summary"
  made+=("$KEEP/build.log")
}

stage_tests() {
  local t=$SECONDS workers="${PYTEST_WORKERS:-8}" xdist=()
  python3 -c "import xdist" 2>/dev/null && xdist=(-n "$workers")
  timeout 360 python3 -m pytest -q -p no:cacheprovider "${xdist[@]}" tests --junitxml="$KEEP/junit.xml" > "$KEEP/tests.log" 2>&1
  note "tests: rc=$? in $((SECONDS - t)) s: $(tail -1 "$KEEP/tests.log")"
  grep -E "^(FAILED|ERROR)" "$KEEP/tests.log" | head -20 | tee -a "$summary"
  t=$SECONDS
  timeout 120 python3 -m maskattn check --device cuda >> "$KEEP/tests.log" 2>&1
  note "maskattn check --device cuda: rc=$? in $((SECONDS - t)) s"
  made+=("$KEEP/junit.xml" "$KEEP/tests.log")
}

stage_sanitize() {
  local results="{" sep="" tool rc errors t
  : > "$KEEP/sanitize.log"
  for tool in memcheck racecheck synccheck initcheck; do
    t=$SECONDS
    echo "=== $tool" >> "$KEEP/sanitize.log"
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 99 python3 bench/gpu/kernel_cases.py cuda \
      > "$KEEP/sanitize.$tool.txt" 2>&1
    rc=$?
    errors=$(grep -oE "ERROR SUMMARY: [0-9]+" "$KEEP/sanitize.$tool.txt" | tail -1 | grep -oE "[0-9]+$")
    if grep -qiE "not supported|unable to|error 999" "$KEEP/sanitize.$tool.txt" && [ -z "$errors" ]; then
      errors='"refused"'
    elif [ -z "$errors" ]; then
      errors="\"no summary (rc=$rc)\""
    fi
    tail -60 "$KEEP/sanitize.$tool.txt" >> "$KEEP/sanitize.log"
    rm -f "$KEEP/sanitize.$tool.txt"
    note "sanitize $tool: rc=$rc errors=$errors in $((SECONDS - t)) s"
    results="$results$sep\"$tool\": $errors"
    sep=", "
  done
  echo "$results}" > "$KEEP/sanitizer.json"
  made+=("$KEEP/sanitize.log" "$KEEP/sanitizer.json")
}

stage_bench() {
  local t=$SECONDS day gpu
  day=$(date +%Y-%m-%d)
  gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())" 2>/dev/null || echo gpu)
  local extra=()
  [ -f "$KEEP/junit.xml" ] && extra+=(--tests-junit "$KEEP/junit.xml")
  [ -f "$KEEP/sanitizer.json" ] && extra+=(--sanitizer "$KEEP/sanitizer.json")
  timeout 200 python3 -m maskattn bench --device cuda --only softmax,masks --report "$KEEP/$day-$gpu-softmax.json" \
    "${extra[@]}" > "$KEEP/bench.log" 2>&1
  note "bench softmax,masks: rc=$? in $((SECONDS - t)) s"
  t=$SECONDS
  timeout 330 python3 -m maskattn bench --device cuda --only attention --report "$KEEP/$day-$gpu-attention.json" \
    --plot "$KEEP/$day-$gpu-attention.png" "${extra[@]}" >> "$KEEP/bench.log" 2>&1
  note "bench attention: rc=$? in $((SECONDS - t)) s"
  made+=("$KEEP/bench.log" "$KEEP/$day-$gpu-softmax.json" "$KEEP/$day-$gpu-attention.json" "$KEEP/$day-$gpu-attention.png")
  grep -E "x |ratio|TFLOP" "$KEEP/bench.log" | tail -30
}

for stage in "$@"; do
  case "$stage" in
    build|tests|sanitize|bench) "stage_$stage" ;;
    *) echo "unknown stage '$stage' (build, tests, sanitize, bench)"; exit 2 ;;
  esac
done
if [ -n "${OUT:-}" ]; then
  for f in "${made[@]:0:8}"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
fi
echo "=== summary"
cat "$summary"
