#!/bin/busybox sh
# tests/swap/init.sh - /init of the guest that tests/swap/swap.sh boots (busybox initramfs,
# Debian's kernel). Reports on the serial console, one "SWAPTEST key value..." line per
# fact, and powers off. Kernel command line:
#   uzram.mode=host   swap on /dev/vda: qemu's NBD client on the host's uzram export
#   uzram.mode=guest  uzram serve --swap runs here, attached with the kernel's nbd client
#                     (nbd-client, netlink) as /dev/nbd0; first its refusals (RLIMIT_MEMLOCK
#                     without CAP_IPC_LOCK, a memory cgroup too small), then the server in a
#                     memory cgroup sized by its budget; its locked memory and I/O flusher
#                     flag from /proc
#   uzram.mib=N       the workload (swapload): N MiB, checked twice
#   uzram.limit=N     guest mode: mem_limit, MiB
#   uzram.serve="..." guest mode: more `uzram serve` options (e.g. -o unit_size=32K),
#                     with spaces as commas
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run /tmp
say() { echo "SWAPTEST $*"; }
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^uzram\.$1=//p"; }
finish() {
  say done
  sync
  poweroff -f
}
MODE=$(arg mode)
MIB=$(arg mib)
LIMIT=$(arg limit)
EXTRA=$(arg serve | tr ',' ' ')
say booted mode=$MODE mib=$MIB mem=$(awk '/MemTotal/ {print $2}' /proc/meminfo)kB
for m in $(cat /mod/order); do
  insmod /mod/$m.ko || say FAIL insmod $m
done

# Flags of every thread of $1: "threads=N flusher=M" (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE).
flusher_threads() {
  n=0
  f=0
  for t in /proc/$1/task/*; do
    flags=$(awk '{print $9}' $t/stat)
    n=$((n + 1))
    [ $((flags & 0x180000)) -eq $((0x180000)) ] && f=$((f + 1))
  done
  echo "threads=$n flusher=$f"
}
# Memory of $1, kB: "vmsize=... vmlck=... locked=... rss=..." (VmLck counts locked
# mappings whole; smaps' Locked: what of them is resident).
memory() {
  echo "vmsize=$(awk '/VmSize/ {print $2}' /proc/$1/status)kB" \
    "vmlck=$(awk '/VmLck/ {print $2}' /proc/$1/status)kB" \
    "locked=$(awk '/^Locked:/ {s += $2} END {print s}' /proc/$1/smaps)kB" \
    "rss=$(awk '/VmRSS/ {print $2}' /proc/$1/status)kB"
}
wait_socket() {
  i=0
  while [ ! -S "$1" ] && [ $i -lt 300 ]; do
    sleep 0.1
    i=$((i + 1))
  done
}

DEV=/dev/vda
if [ "$MODE" = guest ]; then
  U=/opt/bin/uzram
  mkdir -m 0700 -p /run/uzram
  SERVE="serve --swap --size 2G -o mem_limit=${LIMIT}M $EXTRA"
  # Refused: RLIMIT_MEMLOCK of 64 MiB without CAP_IPC_LOCK.
  out=$(/opt/bin/setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock \
    sh -c "ulimit -l 65536; exec $U $SERVE -U /run/uzram/a.sock --control /run/uzram/a.ctl" 2>&1)
  say refuse-memlock rc=$? $out
  # Refused: a memory cgroup limit below what must be locked.
  mount -t cgroup2 none /sys/fs/cgroup
  echo +memory >/sys/fs/cgroup/cgroup.subtree_control
  mkdir /sys/fs/cgroup/small /sys/fs/cgroup/serve
  echo $(((LIMIT - 16) << 20)) >/sys/fs/cgroup/small/memory.max
  out=$(sh -c "echo \$\$ >/sys/fs/cgroup/small/cgroup.procs
    exec $U $SERVE -U /run/uzram/b.sock --control /run/uzram/b.ctl" 2>&1)
  say refuse-cgroup rc=$? $out
  # The server, in a memory cgroup with room for its budget (its log line says it).
  echo $(((LIMIT + 96) << 20)) >/sys/fs/cgroup/serve/memory.max
  sh -c "echo \$\$ >/sys/fs/cgroup/serve/cgroup.procs
    exec $U $SERVE -v -U /run/uzram/nbd.sock --control /run/uzram/control.sock" \
    >/tmp/serve.log 2>&1 &
  SERVER=$!
  wait_socket /run/uzram/nbd.sock
  sed 's/^/SWAPTEST serve-log /' /tmp/serve.log
  say server-start $(flusher_threads $SERVER) $(memory $SERVER)
  /opt/bin/nbd-client -u /run/uzram/nbd.sock /dev/nbd0 -b 4096 -swap >/tmp/nbd.log 2>&1
  say nbd-client rc=$? $(cat /tmp/nbd.log | tr '\n' ' ')
  DEV=/dev/nbd0
fi

# Progress every 10 s: free memory, swap used, pages swapped out and in.
(while sleep 10; do
  say progress $(awk '/MemFree|SwapFree/ {printf "%s=%s ", $1, $2}' /proc/meminfo) \
    $(awk '/pswpout|pswpin/ {printf "%s=%s ", $1, $2}' /proc/vmstat)
done) &
if mkswap $DEV >/dev/null && swapon -d $DEV; then
  say swapon ok $(tail -1 /proc/swaps)
  # Connected and idle: from here on the server must not map memory (a mapping would wait
  # for the kernel to find pages, which may mean waiting for swap: for this server).
  [ "$MODE" = guest ] && say server-serving $(flusher_threads $SERVER) $(memory $SERVER)
else
  say FAIL swapon
  finish
fi
/bin/swapload $MIB 2
say workload rc=$?
if [ "$MODE" = guest ]; then
  say server-end $(flusher_threads $SERVER) $(memory $SERVER)
  say mm_stat $($U ctl --control /run/uzram/control.sock mm_stat)
  say io_stat $($U ctl --control /run/uzram/control.sock io_stat)
  say cgroup $(tr '\n' ' ' </sys/fs/cgroup/serve/memory.events) \
    peak=$(cat /sys/fs/cgroup/serve/memory.peak 2>/dev/null)
  kill -0 $SERVER && say server alive
fi
finish
