#!/usr/bin/env bash
# run-model.sh - model-check the zspage lock protocol (tests/model/zspage_lock.pml) with spin.
#
# For each case: spin -a [-D...] zspage_lock.pml; cc -O2|-O1 [-DSAFETY] pan.c; ./pan ...; then
# check the expectation: the correct model has 0 errors, every broken variant (and the ABA
# probe) has >= 1 error of the expected kind. Prints one line per case and a final line
# "N passed, M failed"; exits 1 if anything failed, 77 (skip) if spin or a C compiler is
# missing. docs/model-checking.md explains the cases.
#
# Environment: SPIN and MODEL_CC (the tools; default: spin, cc or gcc on PATH), MODEL_JOBS
# (cases run in parallel, default 2), MODEL_VERBOSE=1 (print pan's report and the
# counterexample of every case), MODEL_KEEP=1 (keep the work directory), MODEL_CASES="name
# ..." (run only these cases), MODEL_FULL=1 (add correct-full: every process at once, 63
# million states, 2-3 minutes and 3.5 GB).
set -u

here=$(cd "$(dirname "$0")" && pwd)
model="$here/zspage_lock.pml"

SPIN=${SPIN:-$(command -v spin || true)}
CC_BIN=${MODEL_CC:-$(command -v cc || command -v gcc || true)}
if [ -z "$SPIN" ] || ! [ -x "$SPIN" ]; then
  echo "SKIP: spin not found (Debian/Ubuntu: apt-get install spin); model not checked"
  exit 77
fi
if [ -z "$CC_BIN" ] || ! command -v "$CC_BIN" >/dev/null 2>&1; then
  echo "SKIP: no C compiler (cc/gcc) found to build spin's verifier; model not checked"
  exit 77
fi
[ -f "$model" ] || { echo "FAIL: $model not found"; echo "0 passed, 1 failed"; exit 1; }

jobs=${MODEL_JOBS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/uzram-model.XXXXXX")
if [ "${MODEL_KEEP:-0}" = 1 ]; then
  echo "work directory: $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# name | mode (safety, liveness) | expectation (ok, or the error pan must report) | spin -D flags
#   | extra cc flags | extra pan flags
cases='
correct                 |safety  |ok                 |
correct-migration       |safety  |ok                 |-DWITH_MIGRATION -DNREADERS=1 |-DCOLLAPSE
correct-liveness        |liveness|ok                 |-DLIVENESS
writer-waits-deadlock   |safety  |invalid end state  |-DWRITER_WAITS -DSTICK=0
writer-waits-sleeper    |safety  |invalid end state  |-DWRITER_WAITS -DNO_USER
writer-waits-liveness   |liveness|acceptance cycle   |-DWRITER_WAITS -DNO_USER -DLIVENESS
migrator-waits          |safety  |invalid end state  |-DWITH_MIGRATION -DNREADERS=1 -DMIGRATOR_WAITS -DSTICK=0
early-unlock            |safety  |assertion violated |-DEARLY_UNLOCK
no-validate             |safety  |assertion violated |-DNO_VALIDATE
publish-before-copy     |safety  |assertion violated |-DPUBLISH_BEFORE_COPY
trylock-ignores-readers |safety  |assertion violated |-DTRYLOCK_IGNORES_READERS
migrator-no-lock        |safety  |assertion violated |-DWITH_MIGRATION -DNREADERS=1 -DMIGRATOR_NO_LOCK
free-ignores-isolation  |safety  |assertion violated |-DWITH_MIGRATION -DNREADERS=1 -DFREE_IGNORES_ISOLATION
writer-blocks           |safety  |assertion violated |-DWRITER_BLOCKS
aba-probe               |safety  |assertion violated |-DABA_PROBE
'
if [ "${MODEL_FULL:-0}" = 1 ]; then
  cases+='correct-full            |safety  |ok                 |-DWITH_MIGRATION |-DCOLLAPSE |-w26
'
fi

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

now() { date +%s.%N; }

# run_case NAME MODE EXPECT DEFS CCFLAGS PANFLAGS: runs in $work/NAME, writes $work/NAME/result
run_case() {
  local name=$1 mode=$2 expect=$3 defs=$4 ccx=$5 panx=${6:--w22}
  local d="$work/$name" t0 t1 line errors states depth ptime first status opt=-O2
  # A broken variant stops at its first error after a few thousand states: compile it
  # quickly. The correct cases search everything: optimise.
  [ "$expect" = ok ] || opt=-O1
  if ! mkdir -p "$d" || ! cp "$model" "$d/"; then
    echo "FAIL $name: cannot set up $d" >"$d/result"
    return
  fi
  t0=$(now)
  (
    cd "$d" || exit 1
    # shellcheck disable=SC2086
    "$SPIN" $defs -a zspage_lock.pml >spin.log 2>&1 || { echo "spin -a failed"; exit 2; }
    if [ "$mode" = safety ]; then
      # shellcheck disable=SC2086
      "$CC_BIN" -w $opt -DSAFETY $ccx -o pan pan.c >cc.log 2>&1 || { echo "cc failed"; exit 2; }
      # shellcheck disable=SC2086
      ./pan -m100000 $panx >pan.log 2>&1
    else
      # shellcheck disable=SC2086
      "$CC_BIN" -w $opt $ccx -o pan pan.c >cc.log 2>&1 || { echo "cc failed"; exit 2; }
      # shellcheck disable=SC2086
      ./pan -m100000 $panx -a -f >pan.log 2>&1
    fi
    exit 0
  ) >"$d/setup.log" 2>&1
  status=$?
  t1=$(now)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ $status -ne 0 ] || ! [ -f "$d/pan.log" ]; then
    echo "FAIL $name: $(cat "$d/setup.log") (spin/cc output in $d)" >"$d/result"
    { cat "$d/spin.log" "$d/cc.log" 2>/dev/null | tail -20; } >>"$d/result"
    return
  fi
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$d/pan.log" | head -1)
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$d/pan.log" | head -1)
  depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$d/pan.log" | head -1)
  ptime=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$d/pan.log" | head -1)
  first=$(grep -m1 '^pan:1: ' "$d/pan.log" | sed 's/^pan:1: //')
  line="errors=${errors:-?} states=${states:-?} depth=${depth:-?} pan=${ptime:-?}s total=${secs}s"
  local ok=0 why=""
  if [ -z "$errors" ]; then
    why="could not parse pan's report"
  elif [ "$expect" = ok ]; then
    if [ "$errors" -ne 0 ]; then
      why="expected 0 errors, got: $first"
    elif grep -q -e 'max search depth too small' -e 'out of memory' -e 'Search not completed' "$d/pan.log"; then
      why="search incomplete: $(grep -m1 -e 'max search depth' -e 'out of memory' -e 'not completed' "$d/pan.log")"
    else
      ok=1
    fi
  else
    if [ "$errors" -lt 1 ]; then
      why="expected '$expect', spin found no error"
    elif [[ "$first" != *"$expect"* ]]; then
      why="expected '$expect', got: $first"
    else
      ok=1
    fi
  fi
  if [ $ok = 1 ]; then
    if [ "$expect" = ok ]; then
      echo "PASS $name: $line" >"$d/result"
    else
      echo "PASS $name: $line: $first" >"$d/result"
    fi
  else
    echo "FAIL $name: $line: $why" >"$d/result"
  fi
  if [ $ok = 0 ] || [ "${MODEL_VERBOSE:-0}" = 1 ]; then
    {
      echo "---- $name: spin $defs (pan report)"
      grep -v -e '^	' -e '^unreached' "$d/pan.log" | sed '/^$/d' | head -40
      if [ -f "$d/zspage_lock.pml.trail" ]; then
        echo "---- $name: counterexample (spin -t), process steps only"
        # shellcheck disable=SC2086
        (cd "$d" && "$SPIN" $defs -t -p -g zspage_lock.pml 2>&1) |
          grep -E '^ *[0-9]+:|assert|violated|cycle|invalid' | head -200
      fi
    } >>"$d/result"
  fi
}

names=()
pids=()
running=0
while IFS='|' read -r name mode expect defs ccx panx; do
  name=$(trim "$name")
  [ -n "$name" ] || continue
  if [ -n "${MODEL_CASES:-}" ] && [[ " $MODEL_CASES " != *" $name "* ]]; then continue; fi
  if [ "$running" -ge "$jobs" ]; then
    wait -n 2>/dev/null || true
    running=$((running - 1))
  fi
  run_case "$name" "$(trim "$mode")" "$(trim "$expect")" "$(trim "${defs:-}")" "$(trim "${ccx:-}")" \
    "$(trim "${panx:-}")" &
  pids+=($!)
  names+=("$name")
  running=$((running + 1))
done <<<"$cases"

passed=0
failed=0
for i in "${!names[@]}"; do
  wait "${pids[$i]}" 2>/dev/null
  r="$work/${names[$i]}/result"
  if [ -f "$r" ]; then
    cat "$r"
    if head -1 "$r" | grep -q '^PASS '; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  else
    echo "FAIL ${names[$i]}: no result"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
