#!/usr/bin/env bash
# `uzram serve --swap` on this host (docs/uzram-serve.md#swap): the refusals, then, where
# this process may set PR_SET_IO_FLUSHER (CAP_SYS_RESOURCE), the locked memory (VmLck) and
# the I/O flusher flags of every thread in /proc, and serving in a memory cgroup at its
# mem_limit (cgroup v2 or v1, where one can be made), with 4 KiB blocks and with 32 KiB
# units. The same with a real kernel swapping onto it: tests/swap/swap.sh (make test-swap).
here=$(dirname "$0")
source "$here/lib.sh"
[[ $kind == uzram ]] || skip "swap.sh tests uzram serve --swap only"
serve() { "$uzram" serve -U - --control "$tmp/c.sock" "$@"; }
expect() {  # expect RC PATTERN WHAT -- SERVE-ARGS...
  local want=$1 pattern=$2 what=$3 rc=0
  shift 4
  serve "$@" --run true 2>"$tmp/err" || rc=$?
  [[ $rc -eq $want ]] || fail "$what: exit $rc, want $want: $(cat "$tmp/err")"
  grep -q -- "$pattern" "$tmp/err" || fail "$what: no '$pattern' in: $(cat "$tmp/err")"
}

# Refused whatever the privileges: no mem_limit, no limit, TLS, a remote backing tier.
expect 1 'needs -o mem_limit' "--swap without mem_limit" -- --swap --size 64M
expect 1 'mem_limit=0 means no limit' "--swap mem_limit=0" -- --swap --size 64M -o mem_limit=0
printf 'alice:%s\n' 0123456789abcdef0123456789abcdef >"$tmp/psk"
expect 1 'GnuTLS allocates' "--swap with TLS" -- --swap --size 64M -o mem_limit=8M \
  --tls-psk "$tmp/psk"
expect 1 'libnbd allocates' "--swap with a remote backing_dev" -- --swap --size 64M \
  -o mem_limit=8M -o unit_size=32K -o "backing_dev=nbd+unix:///?socket=$tmp/none.sock"
# More than the RAM.
ram_mib=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
expect 2 "RAM" "--swap mem_limit above RAM" -- --swap --size 1G -o mem_limit=$((ram_mib + 64))M
# RLIMIT_MEMLOCK below the budget, without CAP_IPC_LOCK (the limit here, or 16 MiB).
if command -v setpriv >/dev/null; then
  rc=0
  (ulimit -l 16384 2>/dev/null || true
   exec setpriv --inh-caps -ipc_lock --bounding-set -ipc_lock "$uzram" serve -U - \
     --control "$tmp/c.sock" --swap --size 256M -o mem_limit=64M --run true) 2>"$tmp/err" || rc=$?
  [[ $rc -eq 2 ]] && grep -q 'RLIMIT_MEMLOCK' "$tmp/err" ||
    fail "not refused under RLIMIT_MEMLOCK without CAP_IPC_LOCK: exit $rc: $(cat "$tmp/err")"
  echo "ok refused: RLIMIT_MEMLOCK"
fi
echo "ok refused: no mem_limit, mem_limit=0, TLS, above RAM"

# A memory cgroup of our own (v2, else v1), below this process's: "" when none can be made.
cg_version=
cg=
make_cgroup() {
  local own
  own=$(awk -F: '$1 == "0" && $2 == "" {print $3}' /proc/self/cgroup)
  if [[ -n $own && -f /sys/fs/cgroup/cgroup.controllers ]] &&
    grep -qw memory "/sys/fs/cgroup$own/cgroup.controllers" 2>/dev/null; then
    cg=/sys/fs/cgroup$own/uzram-swap-$$
    mkdir "$cg" 2>/dev/null && cg_version=2 && return
  fi
  own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ {print $3}' /proc/self/cgroup)
  if [[ -n $own && -d /sys/fs/cgroup/memory$own ]]; then
    cg=/sys/fs/cgroup/memory${own%/}/uzram-swap-$$
    mkdir "$cg" 2>/dev/null && cg_version=1 && return
  fi
  cg=
}
make_cgroup
if [[ -n $cg ]]; then
  trap 'rmdir "$cg" 2>/dev/null; rm -rf "$tmp"' EXIT
  limit_file=memory.max
  [[ $cg_version == 1 ]] && limit_file=memory.limit_in_bytes
  echo $((48 << 20)) >"$cg/$limit_file"
  rc=0
  sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" "$uzram" serve -U - \
    --control "$tmp/c.sock" --swap --size 256M -o mem_limit=64M --run true 2>"$tmp/err" || rc=$?
  [[ $rc -eq 2 ]] && grep -q 'memory cgroup' "$tmp/err" ||
    fail "not refused in a 48 MiB memory cgroup (v$cg_version): exit $rc: $(cat "$tmp/err")"
  echo "ok refused: a memory cgroup too small (v$cg_version)"
fi

# The rest needs PR_SET_IO_FLUSHER, that is CAP_SYS_RESOURCE.
cap_eff=$(awk '/CapEff/ {print $2}' /proc/self/status)
if (((0x$cap_eff >> 24 & 1) == 0)); then
  skip "no CAP_SYS_RESOURCE here: --swap cannot set PR_SET_IO_FLUSHER (the refusals" \
    "passed; tests/swap/swap.sh guest-swap checks the rest in a VM)"
fi
[[ -n $cg ]] && echo $((256 << 20)) >"$cg/$limit_file"
need nbdcopy nbdinfo
# Locked memory and flags, seen by the captive command; then mem_limit filled (writes
# beyond it fail), the data read back, no OOM kill in the cgroup.
head -c $((24 << 20)) /dev/urandom >"$tmp/rand"
cat > "$tmp/run.sh" <<'RUN'
set -e
pid=$PPID
lck=$(awk '/VmLck/ {print $2}' /proc/$pid/status)
[ "$lck" -ge $(((32 + 4) << 10)) ] || { echo "VmLck $lck kB below the pool"; exit 1; }
for s in /proc/$pid/task/*/stat; do
  flags=$(awk '{print $9}' "$s")
  [ $((flags & 0x80000)) -ne 0 ] || { echo "thread $s lacks PF_MEMALLOC_NOIO: $flags"; exit 1; }
done
echo "VmLck $lck kB; $(ls /proc/$pid/task | wc -l) threads, each an I/O flusher"
nbdcopy "$tmp/rand" "$uri"
nbdcopy "$uri" "$tmp/back"
cmp -n $((24 << 20)) "$tmp/rand" "$tmp/back"
# Incompressible data beyond mem_limit: refused with an error, the server goes on.
if head -c $((64 << 20)) /dev/urandom | nbdcopy - "$uri" 2>/dev/null; then
  echo "writing 64 MiB of random data under a 32 MiB mem_limit succeeded"; exit 1
fi
nbdinfo "$uri" >/dev/null
RUN
runner=(sh -c 'exec "$@"' sh)
[[ -n $cg ]] && runner=(sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg")
# With 4 KiB blocks, then with 32 KiB compression units (docs/units.md).
for unit in 4K 32K; do
  rc=0
  "${runner[@]}" "$uzram" serve -U - --control "$tmp/c.sock" --swap --size 128M \
    -o mem_limit=32M -o unit_size=$unit --run "tmp=$tmp; . $tmp/run.sh" >"$tmp/out" 2>"$tmp/err" ||
    rc=$?
  cat "$tmp/out"
  [[ $rc -eq 0 ]] || fail "serving with --swap, unit_size=$unit: exit $rc: $(cat "$tmp/out" "$tmp/err")"
  grep -q 'swap: .* locked.*I/O flusher on' "$tmp/err" || fail "no --swap log line: $(cat "$tmp/err")"
  if [[ -n $cg ]]; then
    if [[ $cg_version == 2 ]]; then
      kills=$(awk '/oom_kill / {print $2}' "$cg/memory.events")
    else
      kills=$(awk '/oom_kill / {print $2}' "$cg/memory.oom_control")
    fi
    [[ ${kills:-0} -eq 0 ]] || fail "OOM kills in the server's cgroup: $kills"
    echo "ok in a memory cgroup (v$cg_version), unit_size=$unit: no OOM kill"
  fi
  echo "ok --swap, unit_size=$unit: VmLck, I/O flusher flags, mem_limit filled"
done
