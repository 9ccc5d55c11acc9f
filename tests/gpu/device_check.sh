#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage_* functions are called indirectly ("stage_$2")
# The device checks of the GPU issue as one script, run on the GPU machine from the repository root:
#
#   bash tests/gpu/device_check.sh          # results in $OUT (default /tmp/cchet-device)
#
# A lent device gives one run, so the script must not lose it. Every stage runs under its own `timeout`
# (in its own process group, killed whole), and after every stage $OUT/device_check.json is rewritten
# atomically (a temporary file, then rename) with all stages so far: a timeout, a crash or a kill later
# keeps what finished. The run stays within CCHET_CHECK_BUDGET_S (default 460 s: the 8 minutes a lent
# device allows, less a margin): a stage gets at most its limit and never the time later stages' minimums
# need; a stage that cannot have its minimum is skipped, saying so. Nothing CPU-only runs here (the compile
# gates and the emulator tests run on the development machine).
#
# Stages, in order (limit / minimum seconds):
#   wheels          60 / 10  install the carried wheels (.whl/*.whl, --target $CCHET_CHECK_SITE); check that
#                            cryptography, pycryptodome and cchet import, record versions. If they do not,
#                            every later stage that imports cchet is skipped with the reason.
#   versions        60 / 15  nvidia-smi, driver, CUDA runtime, CuPy, Python, GPU, CC state (NVML and
#                            cchet.platform), and per kernel entry point the registers, shared memory, stack
#                            and spills (nvcc --resource-usage for the GPU's architecture) and CuPy's
#                            attributes and occupancy for the module cchet loads (its first compile).
#   pytest         150 / 30  pytest tests/gpu (all but test_hw_correctness.py), JUnit XML summarised.
#   hw_correctness 150 / 40  pytest tests/gpu/test_hw_correctness.py: stream order, >4 GiB, random vs CPU.
#   kernel_bench    60 / 20  bench/bench_gpu.py --only kernels: 1 GiB in 64 KiB, 1, 16, 64 MiB chunks vs D2D copy.
#   channel_bench  120 / 30  bench/bench_gpu.py --only channel: slots 4,8,16,auto x threads 1,2,4,8,16 vs
#                            pinned copies both ways; stops starting configurations 20 s before its limit.
#   task            30 /  5  tests/gpu/device_probe.py task: confidential vs plain Ray GPU task round trip
#                            (cchet.bench.gpu_tasks.bench_task_round_trip); skipped without Ray or the module.
#   timing          90 / 30  tests/gpu/timing.py: per-key timing, Welch's t-test, conflict build as control.
#   sanitizer       90 / 30  compute-sanitizer --tool memcheck on device_probe.py sanitizer-case (skipped
#                            when compute-sanitizer is on neither PATH nor CCHET_CHECK_SANITIZER_DIRS).
#
# Results in $OUT (the device returns at most 8 files):
#   device_check.json         {"format": "cchet-device-check/1", "complete", "started_utc", "budget_s",
#                              "elapsed_s", "stages": [...], "summary": {"ok", "failed", "timeout", "skipped"}};
#                              a stage is {"name", "status": ok|failed|timeout|skipped, "seconds", "limit_s",
#                              "rc", "reason", "data" (the JSON the stage wrote, when strictly valid, else
#                              null with "data_note" saying why), "log" (its name in the archive),
#                              "output_tail" (the log's last 60 lines, ASCII)}.
#   device_check_logs.tar.gz  every stage's full log, JUnit XML and JSON files (rewritten after each stage).
#   summary.txt               the closing summary, also printed.
# Exit status: 1 if any stage failed or timed out, else 0; skipped stages do not fail the run.
#
# A stage command exits 0 (ok), 3 (skipped: its last "stage skipped: <reason>" line says why), or anything
# else (failed). Knobs, for dry runs and for tests/gpu_host/test_device_script.py (which runs this script
# with fake programs on PATH): CCHET_CHECK_PYTHON (default python3), CCHET_CHECK_BUDGET_S,
# CCHET_CHECK_LIMITS ("pytest=2,timing=1": per-stage limits, minimums lowered to match),
# CCHET_CHECK_STAGES (comma list to run; the others are recorded as skipped; wheels always runs),
# CCHET_CHECK_SANITIZER_DIRS, CCHET_CHECK_SITE (default /tmp/site), CCHET_CHECK_WORK (logs; default a new
# temporary folder). CCHET_CHECK_FAKE=1 runs the benchmarks and the timing test on their SIMULATED devices
# (--fake), so the whole script can be dry-run on a machine without a GPU.
set -uo pipefail

SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$(dirname "$SCRIPT")/../.." && pwd)"
cd "$REPO" || exit 2
PY="${CCHET_CHECK_PYTHON:-python3}"
SITE="${CCHET_CHECK_SITE:-/tmp/site}"
FAKE="${CCHET_CHECK_FAKE:-0}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

# ------------------------------------------------------------------------------------------------ stages
# Each runs as `bash device_check.sh --stage NAME` under timeout, with WORK, OUT and STAGE_LIMIT set.

stage_wheels() {  # the imports decide: a failed install is only fatal if they then fail
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing the carried wheels into $SITE:" .whl/*.whl
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
      || echo "WARNING: pip install of .whl/*.whl failed; checking what imports anyway"
  else
    echo "no .whl/*.whl here: using what $PY already has"
  fi
  "$PY" tests/gpu/device_probe.py imports "$WORK/wheels.json"
}

stage_versions() {
  "$PY" tests/gpu/device_probe.py versions "$WORK/versions.json"
}

run_pytest() {  # NAME PYTEST-ARGS...: exit 3 when every test skipped
  local name=$1 rc jrc
  shift
  "$PY" -m pytest -v -rs --durations=15 -p no:cacheprovider --junitxml="$WORK/$name.xml" "$@"
  rc=$?
  "$PY" tests/gpu/device_probe.py junit "$WORK/$name.xml" "$WORK/$name.json"
  jrc=$?
  if (( rc == 0 )); then
    (( jrc == 3 )) && return 3
    return 0
  fi
  echo "pytest exit status $rc"
  return 1
}

stage_pytest() {
  run_pytest pytest tests/gpu --ignore=tests/gpu/test_hw_correctness.py
}

stage_hw_correctness() {
  run_pytest hw_correctness tests/gpu/test_hw_correctness.py
}

stage_kernel_bench() {
  local fake=()
  [[ "$FAKE" == 1 ]] && fake=(--fake)
  "$PY" bench/bench_gpu.py "$WORK/kernel_bench.json" --only kernels --size-mib 1024 --repeats 5 \
    --chunks 64K,1M,16M,64M ${fake[@]+"${fake[@]}"}
}

stage_channel_bench() {
  local fake=() budget=$(( ${STAGE_LIMIT:-120} - 20 ))
  (( budget < 10 )) && budget=10
  [[ "$FAKE" == 1 ]] && fake=(--fake)
  "$PY" bench/bench_gpu.py "$WORK/channel_bench.json" --only channel --channel-mib 256 --repeats 5 \
    --slots 4,8,16,auto --threads 1,2,4,8,16 --budget-s "$budget" ${fake[@]+"${fake[@]}"}
}

stage_task() {
  "$PY" tests/gpu/device_probe.py task "$WORK/task.json"
}

stage_timing() {
  local fake=() budget=$(( ${STAGE_LIMIT:-90} - 15 ))
  (( budget < 10 )) && budget=10
  [[ "$FAKE" == 1 ]] && fake=(--fake clean --candidates 64 --class-size 8 --pool 8 --max-samples 4000)
  "$PY" tests/gpu/timing.py "$WORK/timing.json" --budget-s "$budget" --samples-out "$WORK/timing_samples.npz" \
    ${fake[@]+"${fake[@]}"}
}

find_sanitizer() {
  local d
  if command -v compute-sanitizer >/dev/null 2>&1; then
    command -v compute-sanitizer
    return 0
  fi
  for d in ${CCHET_CHECK_SANITIZER_DIRS-/usr/local/cuda/bin /usr/local/cuda/compute-sanitizer}; do
    if [[ -x "$d/compute-sanitizer" ]]; then
      echo "$d/compute-sanitizer"
      return 0
    fi
  done
  return 1
}

stage_sanitizer() {
  local san rc line
  if ! san=$(find_sanitizer); then
    echo "stage skipped: compute-sanitizer is not on PATH (nor in ${CCHET_CHECK_SANITIZER_DIRS-/usr/local/cuda/bin /usr/local/cuda/compute-sanitizer})"
    return 3
  fi
  echo "using $san"
  "$san" --version 2>&1 | head -n 3
  "$san" --tool memcheck --error-exitcode 9 --print-limit 100 \
    "$PY" tests/gpu/device_probe.py sanitizer-case "$WORK/sanitizer_case.json" 2>&1 | tee "$WORK/sanitizer_raw.log"
  rc=${PIPESTATUS[0]}
  line=$(grep -a "ERROR SUMMARY" "$WORK/sanitizer_raw.log" | tail -n 1 | sed 's/^=* *//')
  printf '{"tool": "memcheck", "sanitizer": %s, "rc": %d, "error_summary": %s, "headline": %s}\n' \
    "$(json_str "$san")" "$rc" "$(json_str "$line")" "$(json_str "memcheck: ${line:-no ERROR SUMMARY line} (exit $rc)")" \
    >"$WORK/sanitizer.json"
  if (( rc == 3 )); then
    return 3
  elif (( rc == 0 )) && [[ "$line" == *" 0 errors"* ]]; then
    return 0
  elif (( rc == 0 )); then
    echo "memcheck printed no clean ERROR SUMMARY line: '$line'"
    return 1
  fi
  echo "memcheck: ${line:-the case failed} (exit $rc)"
  return 1
}

# ------------------------------------------------------------------------------------------------ helpers

now_ms() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    local t=${EPOCHREALTIME//[.,]/}
    echo $(( 10#$t / 1000 ))
  else
    date +%s%3N
  fi
}

seconds() {  # milliseconds -> "12.345"
  printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 ))
}

ascii() {  # stdin -> printable ASCII, tabs and newlines (valid in any JSON string after escaping)
  LC_ALL=C tr -d '\000-\010\013\014\016-\037\177-\377'
}

json_str() {  # a JSON string literal of $1
  local s
  s=$(printf '%s' "$1" | ascii)
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

valid_json() {  # FILE: strict JSON (no NaN or Infinity) by the stage's Python (or any python3)?
  local py check='import json, sys; json.load(open(sys.argv[1]), parse_constant=lambda c: 1 / 0)'
  for py in "$PY" python3; do
    if timeout 20 "$py" -c "$check" "$1" >/dev/null 2>&1; then
      return 0
    fi
  done
  return 1
}

# Dispatch a stage (inside `timeout`), before anything of the main run happens.
if [[ "${1:-}" == "--stage" ]]; then
  declare -F "stage_$2" >/dev/null || { echo "no stage $2"; exit 2; }
  "stage_$2"
  exit $?
fi

# ------------------------------------------------------------------------------------------------ main run

for tool in timeout tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "device_check needs $tool (coreutils/tar) on PATH" >&2; exit 2; }
done
OUT="${OUT:-/tmp/cchet-device}"
WORK="${CCHET_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cchet-check.XXXXXX")}"
BUDGET_S="${CCHET_CHECK_BUDGET_S:-460}"
JSON="$OUT/device_check.json"
ARCHIVE="$OUT/device_check_logs.tar.gz"
mkdir -p "$OUT" "$WORK/records" || exit 2
rm -f "$WORK"/records/*.json
export OUT WORK PY SITE FAKE
if compgen -G ".whl/*.whl" >/dev/null; then
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
fi

STAGES=(wheels versions pytest hw_correctness kernel_bench channel_bench task timing sanitizer)
declare -A LIMIT=([wheels]=60 [versions]=60 [pytest]=150 [hw_correctness]=150 [kernel_bench]=60
  [channel_bench]=120 [task]=30 [timing]=90 [sanitizer]=90)
declare -A MIN=([wheels]=10 [versions]=15 [pytest]=30 [hw_correctness]=40 [kernel_bench]=20
  [channel_bench]=30 [task]=5 [timing]=30 [sanitizer]=30)
declare -A NEEDS_CCHET=([pytest]=1 [hw_correctness]=1 [kernel_bench]=1 [channel_bench]=1 [task]=1 [timing]=1
  [sanitizer]=1)
declare -A STATUS=()
IFS=',' read -r -a _limits <<<"${CCHET_CHECK_LIMITS:-}"
for kv in ${_limits[@]+"${_limits[@]}"}; do
  k=${kv%%=*}
  v=${kv#*=}
  if [[ -n "${LIMIT[$k]:-}" && "$v" =~ ^[0-9]+$ ]]; then
    LIMIT[$k]=$v
    (( MIN[$k] > v )) && MIN[$k]=$v
  fi
done

selected() {
  [[ "$1" == wheels || -z "${CCHET_CHECK_STAGES:-}" || ",$CCHET_CHECK_STAGES," == *",$1,"* ]]
}

reserve_after() {  # seconds the selected stages after $1 need at least
  local seen=0 total=0 s
  for s in "${STAGES[@]}"; do
    if (( seen )) && selected "$s"; then
      total=$(( total + MIN[$s] ))
    fi
    [[ "$s" == "$1" ]] && seen=1
  done
  echo "$total"
}

INDEX=0
CRYPTO_OK=0
CRYPTO_WHY="the wheels stage did not run"
START_MS=$(now_ms)
DEADLINE_MS=$(( START_MS + BUDGET_S * 1000 ))
STARTED_UTC=$(date -u +%Y-%m-%dT%H:%M:%SZ)
STAGE_PID=""
CURRENT=""

record() {  # NAME STATUS MILLISECONDS LIMIT RC REASON
  local name=$1 status=$2 ms=$3 limit=$4 rc=$5 reason=$6
  local log="$WORK/$name.log" data=null note="" tail='""' file size
  file="$WORK/$name.json"
  if [[ -s "$file" ]]; then
    size=$(wc -c <"$file")
    if (( size > 2000000 )); then
      note="$name.json is $size bytes: in the logs archive only"
    elif valid_json "$file"; then
      data=$(cat "$file")
    else
      note="$name.json is not valid JSON (the stage was cut short?): in the logs archive only"
    fi
  fi
  [[ -f "$log" ]] && tail=$(json_str "$(tail -n 60 "$log" | tail -c 6000)")
  INDEX=$(( INDEX + 1 ))
  {
    printf '{"name": %s, "status": "%s", "seconds": %s, "limit_s": %s, "rc": %s,\n' \
      "$(json_str "$name")" "$status" "$(seconds "$ms")" "$limit" "$rc"
    printf ' "reason": %s, "data_note": %s, "log": %s,\n' \
      "$( [[ -n "$reason" ]] && json_str "$reason" || echo null)" \
      "$( [[ -n "$note" ]] && json_str "$note" || echo null)" \
      "$( [[ -f "$log" ]] && json_str "$name.log" || echo null)"
    printf ' "data": %s,\n "output_tail": %s}' "$data" "$tail"
  } >"$WORK/records/$(printf '%02d' "$INDEX")_$name.json"
  STATUS[$name]=$status
  assemble false
  archive
}

count() {
  local n=0 s
  for s in "${!STATUS[@]}"; do
    [[ "${STATUS[$s]}" == "$1" ]] && n=$(( n + 1 ))
  done
  echo "$n"
}

assemble() {  # COMPLETE(true|false): rewrite $JSON from the records, atomically
  local tmp="$JSON.tmp" first=1 f
  {
    printf '{"format": "cchet-device-check/1", "complete": %s, "started_utc": "%s", "budget_s": %s, ' \
      "$1" "$STARTED_UTC" "$BUDGET_S"
    printf '"elapsed_s": %s, "host": %s, "fake": %s,\n"stages": [' \
      "$(seconds $(( $(now_ms) - START_MS )))" "$(json_str "$(hostname 2>/dev/null || echo unknown)")" \
      "$( [[ "$FAKE" == 1 ]] && echo true || echo false)"
    for f in "$WORK"/records/*.json; do
      [[ -e "$f" ]] || continue
      (( first )) || printf ','
      first=0
      printf '\n'
      cat "$f"
    done
    printf '\n],\n"summary": {"ok": %d, "failed": %d, "timeout": %d, "skipped": %d}}\n' \
      "$(count ok)" "$(count failed)" "$(count timeout)" "$(count skipped)"
  } >"$tmp" && mv -f "$tmp" "$JSON"
}

archive() {
  if tar -czf "$ARCHIVE.tmp" -C "$WORK" . 2>/dev/null; then
    mv -f "$ARCHIVE.tmp" "$ARCHIVE"
  else
    rm -f "$ARCHIVE.tmp"
  fi
}

run_stage() {
  local name=$1 reserve left limit t0 rc status reason="" ms
  rm -f "$WORK/$name.json" "$WORK/$name.log" "$WORK/$name.xml"  # nothing stale from an earlier run
  if ! selected "$name"; then
    record "$name" skipped 0 null null "not selected (CCHET_CHECK_STAGES=$CCHET_CHECK_STAGES)"
    return
  fi
  if [[ -n "${NEEDS_CCHET[$name]:-}" && "$CRYPTO_OK" != 1 ]]; then
    record "$name" skipped 0 null null "needs cryptography, pycryptodome and an importable cchet: $CRYPTO_WHY"
    return
  fi
  reserve=$(reserve_after "$name")
  left=$(( (DEADLINE_MS - $(now_ms)) / 1000 - reserve ))
  limit=${LIMIT[$name]}
  (( left < limit )) && limit=$left
  if (( limit < MIN[$name] )); then
    record "$name" skipped 0 null null \
      "not enough time left in the ${BUDGET_S} s budget: ${left} s after keeping ${reserve} s for later stages, needs ${MIN[$name]} s"
    return
  fi
  echo "[device_check] $name (limit ${limit} s)"
  t0=$(now_ms)
  CURRENT=$name
  CURRENT_T0=$t0
  CURRENT_LIMIT=$limit
  STAGE_LIMIT=$limit timeout -k 5 "$limit" bash "$SCRIPT" --stage "$name" >"$WORK/$name.log" 2>&1 &
  STAGE_PID=$!
  wait "$STAGE_PID"
  rc=$?
  STAGE_PID=""
  CURRENT=""
  ms=$(( $(now_ms) - t0 ))
  case $rc in
    0) status=ok ;;
    3)
      status=skipped
      reason=$(grep -a "stage skipped:" "$WORK/$name.log" | tail -n 1 | sed 's/.*stage skipped: *//')
      [[ -n "$reason" ]] || reason="the stage said it cannot run here"
      ;;
    124)
      status=timeout
      reason="stopped by timeout after its limit of ${limit} s"
      ;;
    137)
      if (( ms >= limit * 1000 )); then
        status=timeout
        reason="killed after its limit of ${limit} s (it ignored SIGTERM)"
      else
        status=failed
        reason="killed by SIGKILL after $(seconds "$ms") s (out of memory?)"
      fi
      ;;
    *)
      status=failed
      if (( rc > 128 )); then
        reason="killed by signal $(( rc - 128 ))"
      else
        reason="exit status $rc: $(grep -av '^\s*$' "$WORK/$name.log" | tail -n 1 | cut -c1-300)"
      fi
      ;;
  esac
  record "$name" "$status" "$ms" "$limit" "$rc" "$reason"
  echo "[device_check] $name: $status ($(seconds "$ms") s)${reason:+: $reason}"
  if [[ "$name" == wheels ]]; then
    if [[ "$status" == ok ]]; then
      CRYPTO_OK=1
    else
      CRYPTO_WHY="the wheels stage $status: $(grep -av '^\s*$' "$WORK/wheels.log" | tail -n 1 | cut -c1-300)"
    fi
  fi
}

on_signal() {
  trap - TERM INT HUP
  if [[ -n "$STAGE_PID" ]]; then
    kill -TERM -- "-$STAGE_PID" 2>/dev/null || kill -TERM "$STAGE_PID" 2>/dev/null
    sleep 1
    kill -KILL -- "-$STAGE_PID" 2>/dev/null
    record "$CURRENT" failed $(( $(now_ms) - CURRENT_T0 )) "$CURRENT_LIMIT" null "interrupted by SIG$1"
  fi
  assemble false
  archive
  echo "[device_check] interrupted by SIG$1; $JSON holds the stages so far" >&2
  exit 143
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP

echo "[device_check] results in $OUT, logs in $WORK, budget ${BUDGET_S} s${CCHET_CHECK_STAGES:+, stages $CCHET_CHECK_STAGES}"
assemble false
for stage in "${STAGES[@]}"; do
  run_stage "$stage"
done
assemble true
archive
{
  echo "cchet device check: $(count ok) ok, $(count failed) failed, $(count timeout) timed out, $(count skipped) skipped in $(seconds $(( $(now_ms) - START_MS ))) s"
  if ! timeout 20 "$PY" tests/gpu/device_probe.py summary "$JSON" 2>/dev/null; then
    for stage in "${STAGES[@]}"; do
      printf '  %-15s %s\n' "$stage" "${STATUS[$stage]:-?}"
    done
  fi
  echo "full results: $JSON (logs: $ARCHIVE)"
} | tee "$OUT/summary.txt"
if (( $(count failed) + $(count timeout) > 0 )); then
  exit 1
fi
exit 0
