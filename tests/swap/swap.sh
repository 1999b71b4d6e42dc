#!/usr/bin/env bash
# tests/swap/swap.sh - swap on uzram with a real kernel: Debian's linux-image-amd64 boots
# under qemu (software emulation: -accel tcg) from a busybox initramfs built here, swaps
# onto a uzram export and pushes more data through the guest than it has RAM, then checks
# every page (tests/swap/swapload.c; the guest's /init is tests/swap/init.sh).
#
#   swap.sh UZRAM host       [SERVE-OPTION...]  uzram serve here; qemu's NBD client gives the
#                                               guest the export as its virtio disk
#   swap.sh UZRAM host-swap  [SERVE-OPTION...]  the same with --swap (needs CAP_SYS_RESOURCE)
#   swap.sh UZRAM guest-swap [SERVE-OPTION...]  uzram serve --swap inside the guest, attached
#                                               with the kernel's nbd client (nbd-client)
# SERVE-OPTIONs go to `uzram serve` as they are (e.g. -o unit_size=32K). Environment:
# SWAP_MIB (workload, default 300), SWAP_RAM (guest RAM, MiB, default 256; guest-swap 384).
# Exits 77 (skipped) when qemu, the kernel, busybox or nbd-client is missing (Debian:
# qemu-system-x86 linux-image-amd64 busybox-static nbd-client cpio; scripts/install-deps.sh
# swap).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
uzram=${1:?usage: $0 UZRAM host|host-swap|guest-swap [SERVE-OPTION...]}
variant=${2:-host}
shift 2 || true
extra=("$@")
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x $uzram ]] || fail "uzram executable '$uzram' missing"
uzram=$(cd "$(dirname "$uzram")" && pwd)/$(basename "$uzram")
for t in qemu-system-x86_64 cpio cc; do
  command -v $t >/dev/null || skip "$t not installed (scripts/install-deps.sh swap)"
done
busybox=$(command -v busybox || true)
[[ -n $busybox ]] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
  busybox=/bin/busybox
[[ -x $busybox ]] || skip "busybox not installed (Debian: busybox-static)"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)
[[ -n $kernel ]] || skip "no kernel in /boot (Debian: linux-image-amd64)"
kver=${kernel#/boot/vmlinuz-}
mods=/lib/modules/$kver/kernel
[[ -f $mods/drivers/block/virtio_blk.ko || -f $mods/drivers/block/virtio_blk.ko.xz ]] ||
  skip "modules of $kver missing"
mib=${SWAP_MIB:-300}
ram=${SWAP_RAM:-256}
limit=160
case $variant in
  host | host-swap) ;;
  guest-swap)
    command -v nbd-client >/dev/null || skip "nbd-client not installed (Debian: nbd-client)"
    command -v setpriv >/dev/null || skip "setpriv not installed (Debian: util-linux)"
    ram=${SWAP_RAM:-384}
    limit=96
    ;;
  *) fail "unknown variant '$variant'" ;;
esac

tmp=$(mktemp -d /tmp/uzram-swap.XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- the initramfs ----------------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,mod,lib,lib64,opt/bin}
cp "$busybox" "$root/bin/busybox"
cp "$here/init.sh" "$root/init"
chmod +x "$root/init"
cc -O2 -static -o "$root/bin/swapload" "$here/swapload.c"
modules=(drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev
         drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk)
[[ $variant == guest-swap ]] && modules+=(drivers/block/nbd)
for m in "${modules[@]}"; do
  name=$(basename "$m")
  if [[ -f $mods/$m.ko ]]; then
    cp "$mods/$m.ko" "$root/mod/"
  elif [[ -f $mods/$m.ko.xz ]]; then
    xz -dc "$mods/$m.ko.xz" >"$root/mod/$name.ko"
  else
    fail "module $m of $kver missing"
  fi
  echo "$name" >>"$root/mod/order"
done
# A dynamically linked program and its libraries (guest mode: uzram, nbd-client, setpriv).
copy_program() {
  local dest=$1 prog=$2
  objcopy --strip-debug "$prog" "$root/opt/bin/$dest" 2>/dev/null ||
    cp "$prog" "$root/opt/bin/$dest"
  ldd "$prog" | awk '/=>/ {print $3} /^\t\/lib64/ {print $1}' | while read -r lib; do
    [[ -f $lib ]] || continue
    local to=$root/lib/$(basename "$lib")
    [[ $lib == /lib64/* ]] && to=$root/lib64/$(basename "$lib")
    [[ -e $to ]] || cp -L "$lib" "$to"
  done
}
if [[ $variant == guest-swap ]]; then
  copy_program uzram "$uzram"
  copy_program nbd-client "$(command -v nbd-client)"
  copy_program setpriv "$(command -v setpriv)"
  mkdir -p "$root/etc"
  echo "/lib" >"$root/etc/ld.so.conf"
  ln -s lib "$root/usr" 2>/dev/null || true
fi
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$tmp/initramfs.gz"

# ---- the server (host modes) and qemu -------------------------------------------------
serve_opts=(--size 2G -o mem_limit=${limit}M "${extra[@]}")
drive=()
append="console=ttyS0 quiet panic=-1 uzram.mode=host uzram.mib=$mib"
if [[ $variant == host-swap ]]; then
  serve_opts=(--swap "${serve_opts[@]}")
fi
if [[ $variant == host || $variant == host-swap ]]; then
  mkdir -m 700 "$tmp/run"
  "$uzram" serve -U "$tmp/run/nbd.sock" --control "$tmp/run/control.sock" "${serve_opts[@]}" \
    >"$tmp/serve.out" 2>"$tmp/serve.err" &
  server=$!
  for _ in $(seq 100); do [[ -S $tmp/run/nbd.sock ]] && break; sleep 0.1; done
  if [[ ! -S $tmp/run/nbd.sock ]]; then
    if [[ $variant == host-swap ]] && grep -q 'CAP_SYS_RESOURCE' "$tmp/serve.err"; then
      skip "--swap needs CAP_SYS_RESOURCE here: $(cat "$tmp/serve.err")"
    fi
    fail "server did not start: $(cat "$tmp/serve.err")"
  fi
  disk_opts=format=raw,if=virtio,cache=none,discard=unmap
  drive=(-drive "file=nbd+unix:///?socket=$tmp/run/nbd.sock,$disk_opts")
else
  append="console=ttyS0 quiet panic=-1 uzram.mode=guest uzram.mib=$mib uzram.limit=$limit"
  [[ ${#extra[@]} -gt 0 ]] && append+=" uzram.serve=$(IFS=,; echo "${extra[*]}")"
fi
# The server's statistics while the guest runs (their peaks are what the guest stored).
poll() {
  while kill -0 "$server" 2>/dev/null; do
    "$uzram" ctl --control "$tmp/run/control.sock" mm_stat 2>/dev/null >>"$tmp/mm_stat.log" || true
    sleep 1
  done
}
[[ -n $server ]] && { poll & }

start=$(date +%s)
timeout 900 qemu-system-x86_64 -accel tcg -m "$ram" -smp 1 -nodefaults -nographic -no-reboot \
  -serial stdio -kernel "$kernel" -initrd "$tmp/initramfs.gz" -append "$append" "${drive[@]}" \
  </dev/null >"$tmp/console.log" 2>&1 || true
elapsed=$(($(date +%s) - start))
tr -d '\r' <"$tmp/console.log" | grep -E '^(SWAPTEST|SWAPLOAD)' | tee "$tmp/report"

# ---- checks -------------------------------------------------------------------------------
grep -q '^SWAPTEST done' "$tmp/report" ||
  fail "the guest did not finish; console: $(tail -30 "$tmp/console.log")"
grep -q '^SWAPTEST FAIL' "$tmp/report" && fail "the guest reported a failure"
grep -q '^SWAPTEST swapon ok' "$tmp/report" || fail "no swap"
load=$(grep '^SWAPLOAD' "$tmp/report") || fail "no workload result"
[[ $load == "SWAPLOAD ok "* ]] || fail "pages came back wrong: $load"
grep -q '^SWAPTEST workload rc=0' "$tmp/report" || fail "workload failed"
pswpout=$(sed 's/.*pswpout=\([0-9]*\).*/\1/' <<<"$load")
pswpin=$(sed 's/.*pswpin=\([0-9]*\).*/\1/' <<<"$load")
# At least 40 MiB went out to swap and came back.
((pswpout >= 10240 && pswpin >= 10240)) || fail "too little swapping: $load"

if [[ $variant == host || $variant == host-swap ]]; then
  kill -0 "$server" || fail "the server died"
  max_orig=$(awk 'BEGIN {m = 0} {if ($1 > m) m = $1} END {print m}' "$tmp/mm_stat.log")
  "$uzram" ctl --control "$tmp/run/control.sock" mm_stat >"$tmp/mm_stat"
  "$uzram" ctl --control "$tmp/run/control.sock" io_stat >"$tmp/io_stat"
  echo "server: peak orig_data_size $max_orig; mm_stat $(cat "$tmp/mm_stat");" \
    "io_stat $(cat "$tmp/io_stat")"
  # The swapped data was stored (compressed), and swap's discards reached the store.
  ((max_orig >= 40 << 20)) || fail "the store held at most $max_orig bytes"
  read -r _ _ _ _ used_max _ <"$tmp/mm_stat"
  ((used_max > 0 && used_max <= (limit << 20) + (4 << 20))) || fail "mem_used_max $used_max"
  notify=$(awk '{print $4}' "$tmp/io_stat")
  ((notify > 0)) || fail "no discard reached the store (io_stat: $(cat "$tmp/io_stat"))"
  if [[ $variant == host-swap ]]; then
    grep -q 'swap: .* locked' "$tmp/serve.err" || fail "no --swap log line: $(cat "$tmp/serve.err")"
    lck=$(awk '/VmLck/ {print $2}' "/proc/$server/status")
    ((lck << 10 >= used_max)) || fail "VmLck ${lck} kB below the pool's ${used_max} bytes"
  fi
else
  r=$(grep '^SWAPTEST refuse-memlock' "$tmp/report")
  [[ $r == *rc=2* && $r == *RLIMIT_MEMLOCK* ]] || fail "not refused under RLIMIT_MEMLOCK: $r"
  r=$(grep '^SWAPTEST refuse-cgroup' "$tmp/report")
  [[ $r == *rc=2* && $r == *"memory cgroup"* ]] || fail "not refused in a small cgroup: $r"
  field() { sed "s/.*$1=\([0-9]*\).*/\1/" <<<"$2"; }
  r=$(grep '^SWAPTEST server-start' "$tmp/report")
  n=$(field threads "$r")
  ((n > 0 && $(field flusher "$r") == n)) || fail "not every thread is an I/O flusher: $r"
  # VmLck counts the pool's whole reservation (mem_limit + 4 MiB) from the start.
  (($(field vmlck "$r") >= (limit + 4) << 10)) || fail "VmLck below the pool's reservation: $r"
  grep -q '^SWAPTEST nbd-client rc=0' "$tmp/report" || fail "nbd-client failed"
  r=$(grep '^SWAPTEST server-end' "$tmp/report")
  n=$(field threads "$r")
  ((n > 0 && $(field flusher "$r") == n)) ||
    fail "not every thread is an I/O flusher at the end: $r"
  # Nothing mapped while serving swap (no thread, no heap growth, no table chunk): under
  # mlockall a new mapping is populated at once, and with no free memory that waits for
  # the kernel to reclaim, i.e. for swap: for this server (the hang of issue 14).
  s=$(grep '^SWAPTEST server-serving' "$tmp/report")
  (($(field vmsize "$s") == $(field vmsize "$r") && $(field threads "$s") == n)) ||
    fail "the server mapped memory while it served swap: $s; at the end: $r"
  mm=$(grep '^SWAPTEST mm_stat' "$tmp/report")
  read -r _ _ orig compr used limit_b used_max _ <<<"$mm"
  ((limit_b == limit << 20)) || fail "mem_limit: $mm"
  ((used_max > 16 << 20 && used_max <= limit_b + (4 << 20))) || fail "mem_used_max: $mm"
  # What is resident is locked, the pool's frames included.
  locked=$(field locked "$r")
  rss=$(field rss "$r")
  ((locked << 10 >= used_max && locked * 100 >= rss * 98)) ||
    fail "resident but not locked, or the pool not resident: $r; $mm"
  io=$(grep '^SWAPTEST io_stat' "$tmp/report")
  read -r _ _ _ _ _ notify _ <<<"$io"
  ((notify > 0)) || fail "no discard reached the store: $io"
  c=$(grep '^SWAPTEST cgroup' "$tmp/report")
  [[ $c == *"oom_kill 0"* ]] || fail "OOM kills in the server's cgroup: $c"
  grep -q '^SWAPTEST server alive' "$tmp/report" || fail "the server died"
fi
echo "ok swap $variant ${extra[*]}: ${mib} MiB through a ${ram} MiB guest in ${elapsed} s: $load"
