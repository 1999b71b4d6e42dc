#!/usr/bin/env bash
# fio through its nbd engine (libnbd): random 4 KiB and odd-sized writes with verification,
# 8 jobs (multi-conn) at iodepth 16.
here=$(dirname "$0")
source "$here/lib.sh"
per_unit "$@"
need fio
fio --enghelp 2>/dev/null | grep -qw nbd || skip "fio lacks the nbd engine"
captive 'cd "$tmp" && fio --output="$tmp/fio.out" --verify_state_save=0 --ioengine=nbd --uri="$uri" --size=32M --iodepth=16 \
  --name=rand4k --rw=randwrite --bs=4k --verify=crc32c --verify_fatal=1 \
  --name=odd --rw=randwrite --bsrange=512-12k --offset=32M --size=12M --verify=md5 --verify_fatal=1 \
  --name=multi --rw=randrw --bs=4k --numjobs=4 --offset=48M --size=4M --offset_increment=4M --verify=crc32c --verify_fatal=1' \
  || { grep -iE "verify|err=" "$tmp/fio.out" | head -20; fail "fio"; }
grep -qiE "verify: bad|verify failed|err= *[1-9]" "$tmp/fio.out" && { grep -iE "verify|err=" "$tmp/fio.out" | head -20; fail "fio verification"; }
echo "ok fio"
