#!/usr/bin/env bash
# Fidelity: the same image through the Linux zram device and through `uzram load`, per
# algorithm the kernel offers; prints both mm_stat rows and the differences.
#   scripts/fidelity.sh IMAGE [UZRAM_BINARY]
# Needs root and an unused /sys/block/zram0 (initstate 0); resets it afterwards. Skips
# (exit 77) when there is no usable zram device.
set -euo pipefail
img=${1:?usage: fidelity.sh IMAGE [uzram-binary]}
uz=${2:-build/release/src/cli/uzram}
z=/sys/block/zram0
[[ -w $z/disksize ]] || { echo "fidelity: no writable $z; skipped"; exit 77; }
[[ $(cat $z/initstate) == 0 ]] || { echo "fidelity: zram0 is in use; skipped"; exit 77; }
trap 'echo 1 > $z/reset' EXIT
size=$(( ($(stat -c %s "$img") + 4095) / 4096 * 4096 ))
printf '%-8s %-6s %12s %12s %12s %6s %6s\n' algo side compr_data mem_used same huge ""
for algo in $(tr -d '[]' < $z/comp_algorithm); do
  echo 1 > $z/reset
  echo "$algo" > $z/comp_algorithm
  echo "$size" > $z/disksize
  dd if="$img" of=/dev/zram0 bs=1M oflag=direct status=none
  read -r _ kc km _ _ ks _ kh _ < $z/mm_stat
  echo 1 > $z/reset
  read -r uc um us uh < <("$uz" load "$img" --algo "$algo" --size "$size" --json | python3 -c '
import json, sys; m = json.load(sys.stdin)["mm_stat"]
print(m["compr_data_size"], m["mem_used_total"], m["same_pages"], m["huge_pages"])')
  printf '%-8s %-6s %12s %12s %12s %6s\n' "$algo" kernel "$kc" "$km" "$ks" "$kh"
  printf '%-8s %-6s %12s %12s %12s %6s\n' "" uzram "$uc" "$um" "$us" "$uh"
  python3 -c "print('%-8s %-6s %+11.3f%% %+11.3f%% %12d %6d' % ('', 'diff', 100.0*($uc-$kc)/$kc, 100.0*($um-$km)/$km, $us-$ks, $uh-$kh))"
done
