#!/usr/bin/env bash
# The full pool memory/speed comparison (`make bench`): uzram-bench on the lognormal model
# and on an lz4-compressed page corpus, results under build/bench/, plot in docs/img/.
# Builds nothing: `make bench` builds build/release/bench/uzram-bench first.
#   UZRAM_BENCH_BIN      the binary (default build/release/bench/uzram-bench)
#   UZRAM_BENCH_OBJECTS  objects per run (default 1000000)
#   UZRAM_BENCH_REPEAT   runs per backend, interleaved; speed = median (default 3)
#   UZRAM_BENCH_SEED     seed (default 1)
#   UZRAM_CORPUS         corpus file (default build/corpus.img, built if absent)
#   UZRAM_CORPUS_MIB     size of a corpus built here (default 64)
#   UZRAM_CORPUS_TOOL    the corpus builder (default: make-page-corpus on PATH; not part of
#                        this repository, docs/benchmarks.md#the-page-corpus)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${UZRAM_BENCH_BIN:-build/release/bench/uzram-bench}
objects=${UZRAM_BENCH_OBJECTS:-1000000}
repeat=${UZRAM_BENCH_REPEAT:-3}
seed=${UZRAM_BENCH_SEED:-1}
corpus=${UZRAM_CORPUS:-build/corpus.img}
corpus_mib=${UZRAM_CORPUS_MIB:-64}
corpus_tool=${UZRAM_CORPUS_TOOL:-$(command -v make-page-corpus || echo make-page-corpus)}
out=build/bench
plot=docs/img/churn.png

if [[ ! -x $bin ]]; then
  echo "bench.sh: $bin not found; run 'make bench' (it builds it, then runs this script)" >&2
  exit 1
fi
mkdir -p "$out" docs/img

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src include 2>/dev/null || rev="$rev (src/ or include/ modified)"
echo "== uzram pool benchmark  $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "   commit   $rev"
echo "   machine  $cpu, $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
     "load $(cut -d' ' -f1-3 /proc/loadavg), kernel $(uname -r)"
echo "   run      $objects objects, $repeat runs per backend, seed $seed"
echo

timelines=()
run() {  # run NAME [uzram-bench flags...]
  local name=$1
  shift
  echo "== $name: $bin --objects $objects --repeat $repeat --seed $seed $*"
  if "$bin" --objects "$objects" --repeat "$repeat" --seed "$seed" "$@" \
       --timeline "$out/churn-$name.dat" --json-out "$out/$name.json" | tee "$out/$name.txt"; then
    timelines+=("$out/churn-$name.dat")
  else
    echo "bench.sh: the $name run failed (see above)" >&2
    status=1
  fi
  echo
}
status=0

run lognormal

if [[ ! -s $corpus ]]; then
  if [[ -x $corpus_tool && $(id -u) -eq 0 ]]; then
    echo "== building a $corpus_mib MiB page corpus: $corpus_tool $corpus $corpus_mib"
    "$corpus_tool" "$corpus" "$corpus_mib" || rm -f "$corpus"
  elif [[ -x $corpus_tool ]]; then
    echo "bench.sh: no corpus at $corpus and $corpus_tool needs root; run as root:" \
         "$corpus_tool $corpus $corpus_mib"
  else
    echo "bench.sh: no corpus at $corpus and no $corpus_tool; skipping the corpus run" \
         "(UZRAM_CORPUS=FILE points at a file of 4 KiB pages)"
  fi
fi
if [[ -s $corpus ]]; then
  run corpus --corpus "$corpus"
fi

if ((${#timelines[@]})) && command -v gnuplot >/dev/null; then
  gnuplot -c scripts/plot-churn.gp "$plot" "${timelines[@]}"
  echo "== plot: $plot (data: ${timelines[*]})"
elif ((${#timelines[@]})); then
  echo "bench.sh: gnuplot not installed (scripts/install-deps.sh bench); no plot"
fi
echo "== results: $out/{lognormal,corpus}.{txt,json}"
exit $status
