#!/usr/bin/env bash
# The GPU proof of the CUDA path (H100/H200), sized for a device budget of 15 minutes that counts
# the machine's start too. Run in the repository root on the GPU machine, with a timeout of 600 s:
#   bash bench/gpu/check.sh         the first call: build tests check bench memcheck cpu (<= 540 s)
#   bash bench/gpu/check.sh more    at once after it, while the machine is warm (it stays so for
#                                   seconds), if device time is left: sweep sanitize suite
# Stages: build (pip install -e ., the visible GPU's arch), tests (the CUDA cases of the suite,
# junit), check (python -m maskattn check --device cuda), bench (attention and softmax, --quick,
# with the report and plot), memcheck (compute-sanitizer over bench/gpu/kernel_cases.py; "refused"
# where the runtime refuses the device), cpu (the host CPU's per-path tests and quick CPU bench at 2
# threads: the Intel figures the CPU issue lacks), sweep (the full attention bench), sanitize (racecheck,
# synccheck, initcheck), profile (ncu over bench/gpu/profile_cases.py), suite (the whole test suite:
# more than 240 s on an H200 machine with 8 workers, so give it a call of its own). Stages may be
# named on the command line, in order. Each stage runs under the smaller of its own
# cap and what is left of CHECK_BUDGET_S (default 540 s); a stage that cannot get its minimum is
# skipped and says so; the next stage runs even if one failed. Logs live in build/gpu (kept between
# calls while the machine stays warm). After every stage this call's first 7 files are copied to
# $OUT and all of them packed into $OUT/gpu-files.tar.gz (the device tool brings back 8 files), so a
# call stopped at its limit still returns what it finished. The last lines printed are the summary.
# Seen on an H200 machine (2026-12-04): build 41-46 s, tests 73-79 s, check 7 s, quick bench 52-57 s,
# memcheck 11-13 s, synccheck 7 s, initcheck 8 s, racecheck > 60 s, profile 13 s.
set -uo pipefail
cd "$(dirname "$0")/../.."
KEEP=build/gpu
mkdir -p "$KEEP"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export TORCHINDUCTOR_CACHE_DIR="$(mktemp -d)"
BUDGET=${CHECK_BUDGET_S:-540}
START=$SECONDS
DAY=$(date +%Y-%m-%d)
summary="$KEEP/summary.txt"
: > "$summary"
made=("$summary")  # this call's files, for $OUT
note() { echo "$*" | tee -a "$summary"; }
keep() {  # adds files to this call's list, once each
  local f g
  for f in "$@"; do
    for g in "${made[@]}"; do [ "$g" = "$f" ] && continue 2; done
    made+=("$f")
  done
}

publish() {  # the first 7 files as they are, every file of this call in one archive beside them
  [ -n "${OUT:-}" ] || return 0
  local f
  for f in "${made[@]:0:7}"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
  tar czf "$OUT/gpu-files.tar.gz" "${made[@]}" 2>/dev/null
}

# limit NAME CAP MIN: prints the seconds NAME may run (its cap, or what is left of the budget), or
# notes the skip and fails when less than MIN is left
limit() {
  local left=$((BUDGET - (SECONDS - START) - 5))
  local secs=$(($2 < left ? $2 : left))
  if [ "$secs" -lt "$3" ]; then
    note "$1: skipped ($left s left of the $BUDGET s budget, needs $3)"
    return 1
  fi
  echo "$secs"
}

gpu_name() {
  python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())" 2>/dev/null || echo gpu
}

stage_build() {
  local t=$SECONDS secs
  secs=$(limit build 300 60) || return
  MAX_JOBS="${MAX_JOBS:-16}" timeout "$secs" python3 -m pip install --no-build-isolation --no-deps -e . \
    > "$KEEP/build.log" 2>&1
  note "build: rc=$? in $((SECONDS - t)) s (limit $secs)"
  python3 -c "import json, maskattn; i = maskattn.build_info(); print(json.dumps({k: i.get(k) for k in ('backends', 'cuda_archs', 'torch', 'torch_cuda', 'cuda_available')}))" 2>&1 | tee -a "$summary"
  keep "$KEEP/build.log"
}

run_tests() {  # NAME CAP MIN pytest-args...
  local name=$1 cap=$2 least=$3 t=$SECONDS secs xdist=()
  shift 3
  secs=$(limit "$name" "$cap" "$least") || return
  python3 -c "import xdist" 2>/dev/null && xdist=(-n "${PYTEST_WORKERS:-8}")
  timeout "$secs" python3 -m pytest -q -p no:cacheprovider "${xdist[@]}" "$@" --junitxml="$KEEP/junit.xml" \
    > "$KEEP/tests.log" 2>&1
  note "$name: rc=$? in $((SECONDS - t)) s (limit $secs): $(tail -1 "$KEEP/tests.log")"
  grep -E "^(FAILED|ERROR)" "$KEEP/tests.log" | head -20 | tee -a "$summary"
  keep "$KEEP/junit.xml" "$KEEP/tests.log"
}

stage_tests() { run_tests tests 200 30 -m cuda tests; }
stage_suite() { run_tests suite "${SUITE_CAP_S:-300}" 60 tests; }

stage_check() {
  local t=$SECONDS secs
  secs=$(limit check 90 15) || return
  echo "=== python -m maskattn check --device cuda" >> "$KEEP/tests.log"
  timeout "$secs" python3 -m maskattn check --device cuda > "$KEEP/check.log" 2>&1
  note "check --device cuda: rc=$? in $((SECONDS - t)) s: $(tail -1 "$KEEP/check.log")"
  grep -E "FAIL" "$KEEP/check.log" | head -10 | tee -a "$summary"
  cat "$KEEP/check.log" >> "$KEEP/tests.log"  # one file fewer for $OUT
  keep "$KEEP/tests.log"
}

# sanitizer TOOL...: each tool over the kernel cases; results merged into sanitizer.json
sanitizer() {
  local tool rc errors t secs
  for tool in "$@"; do
    t=$SECONDS
    secs=$(limit "sanitize $tool" "${SANITIZE_CAP_S:-120}" 30) || continue
    timeout "$secs" compute-sanitizer --tool "$tool" --error-exitcode 99 python3 bench/gpu/kernel_cases.py cuda \
      > "$KEEP/sanitize.$tool.txt" 2>&1
    rc=$?
    errors=$(grep -oE "ERROR SUMMARY: [0-9]+" "$KEEP/sanitize.$tool.txt" | tail -1 | grep -oE "[0-9]+$")
    if grep -qiE "not supported|unable to|error 999" "$KEEP/sanitize.$tool.txt" && [ -z "$errors" ]; then
      errors='"refused"'
    elif [ -z "$errors" ]; then
      errors="\"no summary (rc=$rc)\""
    fi
    note "sanitize $tool: rc=$rc errors=$errors in $((SECONDS - t)) s (limit $secs)"
    [ "$rc" -ne 0 ] && grep -m 20 -E "=========" "$KEEP/sanitize.$tool.txt" | tee -a "$summary"
    python3 - "$KEEP/sanitizer.json" "$tool" "$errors" <<'PY'
import json, os, sys
path, tool, errors = sys.argv[1:]
results = json.load(open(path)) if os.path.exists(path) else {}
results[tool] = json.loads(errors)
json.dump(results, open(path, "w"))
PY
  done
  keep "$KEEP/sanitizer.json"
}

stage_memcheck() { sanitizer memcheck; }

# ncu over bench/gpu/profile_cases.py: the decoding step, the causal forward and its backward
stage_profile() {
  local t=$SECONDS secs
  secs=$(limit profile 120 40) || return
  timeout "$secs" ncu --clock-control none --kernel-name regex:"attention_(fwd_tc|fwd_merge|bwd_dq_tc|bwd_dkdv_tc)" \
    --launch-count 5 --section SpeedOfLight --section Occupancy --section LaunchStats \
    --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats \
    --section SchedulerStats python3 bench/gpu/profile_cases.py > "$KEEP/ncu.txt" 2>&1
  note "profile (ncu): rc=$? in $((SECONDS - t)) s (limit $secs): $(grep -c "attention_" "$KEEP/ncu.txt") lines name a kernel"
  grep -E "^  [a-z_:<>, 0-9]*attention|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Block Limit" \
    "$KEEP/ncu.txt" | head -60 | tee -a "$summary"
  keep "$KEEP/ncu.txt"
}
stage_sanitize() { sanitizer racecheck synccheck initcheck; }

# bench NAME CAP MIN FAMILIES TAG [--quick]: one report and plot per call
bench() {
  local name=$1 cap=$2 least=$3 families=$4 tag=$5 t=$SECONDS secs extra=()
  shift 5
  secs=$(limit "$name" "$cap" "$least") || return
  local stem="$KEEP/$DAY-$(gpu_name)-$tag"
  [ -f "$KEEP/junit.xml" ] && extra+=(--tests-junit "$KEEP/junit.xml")
  [ -f "$KEEP/sanitizer.json" ] && extra+=(--sanitizer "$KEEP/sanitizer.json")
  timeout "$secs" python3 -m maskattn bench --device cuda --only "$families" "$@" --report "$stem.json" \
    --plot "$stem.png" "${extra[@]}" > "$KEEP/bench-$tag.log" 2>&1
  note "$name: rc=$? in $((SECONDS - t)) s (limit $secs)"
  grep -E "x |ratio|TFLOP" "$KEEP/bench-$tag.log" | tail -30
  keep "$stem.json" "$stem.png" "$KEEP/bench-$tag.log"
}

stage_bench() { bench bench 150 60 attention,softmax,decode quick --quick; }

# The CPU kernels on this machine's host CPU (an Intel Xeon on the H200 machine: AVX-512,
# AVX512-BF16/FP16, AMX, which no CPU-only session has had): the per-path tests (AMX tiles for real,
# not emulated), then the quick CPU bench at 2 threads, the CPU issue's setting, as a report.
stage_cpu() {
  local t=$SECONDS secs tag
  secs=$(limit cpu 150 45) || return
  tag=$(awk -F': ' '/^vendor_id/ {v = $2} /^cpu family/ {f = $2} /^model\t/ {m = $2} END {
        sub(/Genuine/, "", v); sub(/Authentic/, "", v); printf "%s-f%sm%s", tolower(v), f, m}' /proc/cpuinfo)
  OMP_NUM_THREADS=2 timeout "$((secs / 2))" python3 -m pytest -q -p no:cacheprovider tests/test_cpu_paths.py \
    --junitxml="$KEEP/junit-cpu.xml" > "$KEEP/cpu-tests.log" 2>&1
  note "cpu tests (test_cpu_paths.py): rc=$? in $((SECONDS - t)) s: $(tail -1 "$KEEP/cpu-tests.log")"
  grep -E "^(FAILED|ERROR)" "$KEEP/cpu-tests.log" | head -10 | tee -a "$summary"
  local stem="$KEEP/$DAY-cpu-$tag-quick" left=$((secs - (SECONDS - t)))
  [ "$left" -lt 20 ] && { note "cpu bench: skipped ($left s left)"; keep "$KEEP/cpu-tests.log"; return; }
  OMP_NUM_THREADS=2 timeout "$left" python3 -m maskattn bench --device cpu --only attention,softmax --quick \
    --tests-junit "$KEEP/junit-cpu.xml" --report "$stem.json" > "$KEEP/cpu-bench.log" 2>&1
  note "cpu bench (2 threads, --quick): rc=$? in $((SECONDS - t)) s, $(grep -m1 '^# cpu' "$KEEP/cpu-bench.log")"
  python3 - "$stem.json" <<'PY' 2>&1 | head -30 | tee -a "$summary"
import json, sys
groups = {}
for r in json.load(open(sys.argv[1]))["rows"]:  # torch's time over maskattn's, per case
    groups.setdefault((r["name"], r["dtype"], "x".join(map(str, r["shape"])), r["mode"]), []).append(r)
for key, rows in groups.items():
    ours = next((r for r in rows if r["ours"] and r["ms"]), None)
    for r in rows:
        if ours and not r["ours"] and r["ms"]:
            print("  %s %s %s %s: %s %.2fx (path %s)" % (*key, r["method"], r["ms"] / ours["ms"], ours["path"]))
PY
  keep "$stem.json" "$KEEP/cpu-bench.log" "$KEEP/cpu-tests.log"
}
stage_sweep() { bench sweep 330 120 attention,softmax,decode sweep; }

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build tests check bench memcheck cpu)
[ "${stages[*]}" = more ] && stages=(sweep sanitize suite)
for stage in "${stages[@]}"; do
  case "$stage" in
    build|tests|check|bench|memcheck|cpu|sweep|sanitize|profile|suite) "stage_$stage" ;;
    *) echo "unknown stage '$stage' (build, tests, check, bench, memcheck, cpu, sweep, sanitize, profile, suite; or more)"
       exit 2 ;;
  esac
  publish
done
echo "=== summary ($((SECONDS - START)) s of $BUDGET)"
cat "$summary"
