#!/usr/bin/env bash
# A filesystem through nbdfuse: mkfs.ext4, then e2fsck -fn finds it clean.
here=$(dirname "$0")
source "$here/lib.sh"
per_unit "$@"
need nbdfuse fusermount3 mkfs.ext4 e2fsck
[[ -c /dev/fuse ]] || skip "no /dev/fuse"
mkdir "$tmp/mnt"
captive '
  nbdfuse "$tmp/mnt/disk" "$uri" & fuse=$!
  for i in $(seq 200); do [ -s "$tmp/mnt/disk" ] && break; kill -0 $fuse 2>/dev/null || break; sleep 0.05; done
  if ! [ -s "$tmp/mnt/disk" ]; then wait $fuse; exit 77; fi
  mkfs.ext4 -q -F "$tmp/mnt/disk" && e2fsck -fn "$tmp/mnt/disk" > "$tmp/fsck" 2>&1; r=$?
  fusermount3 -u "$tmp/mnt"; wait $fuse
  exit $r' || { rc=$?; [[ $rc -eq 77 ]] && skip "FUSE mount failed (no FUSE permission here?)"; cat "$tmp/fsck" 2>/dev/null; fail "mkfs/e2fsck through nbdfuse: $rc"; }
echo "ok nbdfuse mkfs.ext4 e2fsck"
