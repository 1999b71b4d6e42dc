#!/usr/bin/env bash
# Real clients against a captive server: nbdinfo (size, capabilities, contexts), nbdcopy of
# an image in and out, qemu-img convert/compare, qemu-io pattern I/O at odd offsets.
here=$(dirname "$0")
source "$here/lib.sh"
per_unit "$@"
need nbdinfo nbdcopy qemu-img qemu-io

# nbdinfo: size, capabilities and the base:allocation context.
captive 'nbdinfo --json "$uri" > "$tmp/info.json"'
unit=0  # uzram: the preferred block size is the unit (NBD_INFO_BLOCK_SIZE)
[[ $kind == uzram ]] && { u=${UZRAM_UNIT:-4K}; unit=$((${u%K} * 1024)); }
python3 - "$tmp/info.json" "$size" "$unit" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["export-size"] == int(sys.argv[2]), e["export-size"]
if int(sys.argv[3]):
    assert e["block_size_minimum"] == 1, e
    assert e["block_size_preferred"] == int(sys.argv[3]), e
    assert e["block_size_maximum"] == 32 << 20, e
for cap in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_multi_conn"):
    assert e.get(cap) is True, cap
assert e["is_read_only"] is False
assert "base:allocation" in e["contexts"], e["contexts"]
PY
echo "ok nbdinfo"

# A real image: 20 MiB of system files (compressible and not), then zeros.
img=$tmp/image
cat /usr/bin/* 2>/dev/null | head -c $((20 << 20)) > "$img" || true
truncate -s "$size" "$img"

# nbdcopy in and out.
captive 'nbdcopy "$tmp/image" "$uri" && nbdcopy "$uri" "$tmp/out" && nbdinfo --map "$uri" > "$tmp/map"'
cmp "$img" "$tmp/out" || fail "nbdcopy round trip differs"
grep -q 'data' "$tmp/map" || fail "map shows no data: $(cat "$tmp/map")"
echo "ok nbdcopy"

# qemu-img convert and compare, then the same data copied back out by qemu-img.
captive 'qemu-img convert -n -f raw -O raw "$tmp/image" "$uri" && qemu-img compare -f raw -F raw "$tmp/image" "$uri" &&
         qemu-img convert -f raw -O raw "$uri" "$tmp/out2"'
cmp "$img" "$tmp/out2" || fail "qemu-img round trip differs"
echo "ok qemu-img"

# qemu-io: patterns at odd offsets across block boundaries, zeroes, discard.
captive 'qemu-io -f raw "$uri" \
  -c "write -P 0x5a 1000 5000" -c "read -P 0x5a 1000 5000" -c "read -P 0 0 1000" -c "read -P 0 6000 2192" \
  -c "write -P 0xa5 4095 2" -c "read -P 0x5a 4093 2" -c "read -P 0xa5 4095 2" -c "read -P 0x5a 4097 1000" \
  -c "aio_write -P 0x11 65537 131071" -c "aio_write -P 0x22 262143 3" -c aio_flush \
  -c "read -P 0x11 65537 131071" -c "read -P 0x22 262143 3" \
  -c "write -z 3 9000" -c "read -P 0 3 9000" -c "write -P 0x33 -f 1048576 65536" -c "read -P 0x33 1048576 65536" \
  -c "discard 1048576 65536" -c flush' > "$tmp/qio" 2>&1 || { cat "$tmp/qio"; fail "qemu-io"; }
if grep -qiE "pattern verification failed|error|failed" "$tmp/qio"; then cat "$tmp/qio"; fail "qemu-io"; fi
echo "ok qemu-io"
