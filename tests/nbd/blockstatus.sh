#!/usr/bin/env bash
# Block status where nbdkit's zstd allocator (1.32.5) crashes or lies
# (shared reference: multi-page-units.md, "Known bugs"): `nbdinfo --map` of a fresh disk,
# block status in an unwritten 128 MiB region after a write elsewhere, `nbdcopy URI null:`
# (it asks for extents), the map after a write at the end of the first 128 MiB region
# (the holes after it must stay "hole,zero"), and a sparse nbdcopy of more than 128 MiB in
# and out. Against uzram with 4 KiB and 32 KiB units (per_unit), and nbdkit's memory plugin
# (its default sparse allocator answers correctly: the protocol reference). By hand:
# `NBDKIT_ALLOCATOR=zstd tests/nbd/blockstatus.sh nbdkit` shows nbdkit's zstd allocator
# failing.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
per_unit "$@"
need nbdinfo nbdcopy nbdsh python3
export PATH=/usr/bin:$PATH  # nbdsh runs python3 from PATH: the system one has the nbd module
nbdsh -c pass 2>/dev/null || skip "nbdsh cannot import the nbd module (Debian: python3-libnbd)"
size=$((1 << 30))  # 8 regions of 128 MiB
M=$((1 << 20))

# The source of the sparse copy: 300 MiB, data in three places, holes elsewhere.
src=$tmp/sparse.img
truncate -s $((300 * M)) "$src"
head -c $((1 * M)) /usr/bin/bash | dd of="$src" bs=1M seek=0 conv=notrunc status=none
seq 1 300000 > "$tmp/text"  # a file: no SIGPIPE under pipefail
head -c $((1 * M)) "$tmp/text" | dd of="$src" bs=1M seek=130 conv=notrunc status=none
head -c $((512 << 10)) /dev/urandom | dd of="$src" bs=512K seek=598 conv=notrunc status=none
export src M here

captive '
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
# 1. A fresh disk: one extent, hole and zero, over the whole disk.
nbdinfo --map "$uri" > "$tmp/map0" || fail "nbdinfo --map on a fresh disk"
[ "$(wc -l < "$tmp/map0")" = 1 ] || fail "fresh map: $(cat "$tmp/map0")"
read -r off len typ desc < "$tmp/map0"
[ "$off $len $typ $desc" = "0 $size 3 hole,zero" ] || fail "fresh map: $(cat "$tmp/map0")"
# 2. After 64 KiB at offset 0: block status in unwritten regions, across a region boundary,
# with REQ_ONE; and the last 32 KiB of the first region written.
nbdsh --base-allocation -u "$uri" -c "
import nbd
def ext(off, n, flags=0):
    out = []
    def cb(meta, offset, entries, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            out.extend(zip(entries[0::2], entries[1::2]))
    h.block_status(n, off, cb, flags)
    return out
HZ = nbd.STATE_HOLE | nbd.STATE_ZERO
h.pwrite(b\"\\x5a\" * 65536, 0)
e = ext(512 << 20, 1 << 20)
assert e and all(f == HZ for _, f in e) and sum(n for n, _ in e) >= 4096, e
assert ext(512 << 20, 1 << 20, nbd.CMD_FLAG_REQ_ONE)[0][1] == HZ
e = ext((128 << 20) - 32768, 65536)
assert all(f == HZ for _, f in e), e
e = ext(0, 2 << 20)
assert e[0] == (65536, 0) and e[1][1] == HZ, e
e = ext((1 << 30) - 4096, 4096)
assert e == [(4096, HZ)], e
h.pwrite(b\"\\xa5\" * 32768, (128 << 20) - 32768)
e = ext((128 << 20) - 32768, 65536)
assert e[0] == (32768, 0) and e[1][1] == HZ, e
" || fail "block status in unwritten regions"
# 3. nbdcopy asks for extents: a copy to null: and to a sparse file.
nbdcopy "$uri" null: || fail "nbdcopy URI null:"
# 4. The map: data at [0, 64K) and at the end of the first region; holes (3) elsewhere,
# the 896 MiB after the first region included.
nbdinfo --map "$uri" > "$tmp/map1" || fail "nbdinfo --map after writes"
python3 - "$tmp/map1" "$size" <<PY || fail "map after writes: $(cat "$tmp/map1")"
import sys
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
size = int(sys.argv[2])
assert sum(n for _, n, _ in ext) == size, ext
data = [(o, n) for o, n, t in ext if t == 0]
assert data == [(0, 65536), ((128 << 20) - 32768, 32768)], ext
assert all(t == 3 for o, n, t in ext if t != 0), ext
PY
# 5. A sparse copy of 300 MiB in and out: identical, and holes where the source has them.
nbdcopy "$src" "$uri" || fail "sparse nbdcopy in"
nbdcopy "$uri" "$tmp/out.img" || fail "sparse nbdcopy out"
cmp -n $((300 * M)) "$src" "$tmp/out.img" || fail "sparse copy differs"
nbdinfo --map "$uri" > "$tmp/map2" || fail "nbdinfo --map after the copy"
python3 - "$tmp/map2" "$M" <<PY || fail "map after the sparse copy: $(cat "$tmp/map2")"
import sys
M = int(sys.argv[2])
ext = [tuple(int(x) for x in l.split()[:3]) for l in open(sys.argv[1])]
def flags(pos):
    return next(t for o, n, t in ext if o <= pos < o + n)
for pos in (0, M - 1, 130 * M, 131 * M - 1, 299 * M, 299 * M + (512 << 10) - 1):
    assert flags(pos) & 1 == 0, (pos, ext)  # data stays allocated
for pos in (2 * M, 129 * M, 200 * M, 298 * M, 301 * M, 1023 * M):
    assert flags(pos) & 2, (pos, ext)  # reads as zeros
PY
echo "ok"
' > "$tmp/log" 2>&1 || { cat "$tmp/log"; fail "block status ($kind ${UZRAM_UNIT:-}${NBDKIT_ALLOCATOR:-})"; }
cat "$tmp/log"
echo "ok block status: fresh map, unwritten regions, nbdcopy null:, map, sparse copy"
