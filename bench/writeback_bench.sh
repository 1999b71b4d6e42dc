#!/usr/bin/env bash
# Writeback and read-back through a local file, and through nbd+unix:// to `nbdkit memory`
# and to another `uzram serve`, interleaved, raw and packed (docs/benchmarks.md, "Store:
# packed writeback and the remote tier"). Usage:
#   bench/writeback_bench.sh BUILD-DIR CORPUS [RUNS] [FILE-DIR] [COPIES]
# BUILD-DIR holds bench/uzram-writeback-bench and src/cli/uzram (a release build); CORPUS
# is a page corpus (make-page-corpus); FILE-DIR is where the local backing file goes (a
# real disk, not tmpfs: default /var/tmp); COPIES: the corpus is stored that many times
# (default 1), so that each timed pass lasts long enough on a busy machine.
set -euo pipefail
build=${1:?usage: $0 BUILD-DIR CORPUS [RUNS] [FILE-DIR] [COPIES]}; corpus=${2:?corpus}
runs=${3:-5}; filedir=${4:-/var/tmp}; copies=${5:-1}
bench=$build/bench/uzram-writeback-bench; uzram=$build/src/cli/uzram
tmp=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
size=$(( $(stat -c %s "$corpus") * (copies + 1) ))
nbdkit -f -U "$tmp/kit.sock" -P "$tmp/kit.pid" memory "$size" & pids+=($!)
"$uzram" serve -U "$tmp/uz.sock" --control "$tmp/uz.ctl" --size "$size" --algo lz4 \
  > "$tmp/uz.log" 2>&1 & pids+=($!)
for _ in $(seq 200); do [[ -S $tmp/kit.sock && -S $tmp/uz.sock ]] && break; sleep 0.05; done
file=$filedir/uzram-writeback-bench.$$
for r in $(seq "$runs"); do
  for algo in lz4 zstd; do
    for packed in "" --packed; do
      "$bench" --corpus "$corpus" --algo "$algo" $packed --repeat 1 --copies "$copies" \
        --backing "$file"
      "$bench" --corpus "$corpus" --algo "$algo" $packed --repeat 1 --copies "$copies" \
        --backing "nbd+unix:///?socket=$tmp/kit.sock"
      "$bench" --corpus "$corpus" --algo "$algo" $packed --repeat 1 --copies "$copies" \
        --backing "nbd+unix:///?socket=$tmp/uz.sock" | sed 's/^remote/uzram-serve/'
    done
  done
done
