#!/usr/bin/env bash
# Fails when a layer includes a higher one, or a sibling. Order: util -> sync -> pool ->
# store -> {nbd, control} -> cli. nbd (the NBD server) and control (the control socket) are
# siblings on the store: neither includes the other; the cli's `serve` embeds both.
set -euo pipefail
root=${1:-.}
fail=0
check() {  # check LAYER FORBIDDEN...
  local layer=$1; shift
  [[ -d "$root/src/$layer" ]] || return 0
  for f in "$@"; do
    if grep -rnE "#include \"$f/" "$root/src/$layer"; then
      echo "layering: src/$layer must not include $f/"; fail=1
    fi
  done
}
check util sync pool store nbd control cli
check sync pool store nbd control cli
check pool store nbd control cli
check store nbd control cli
check nbd control cli
check control nbd cli
if grep -rn '#include "\(util\|sync\|pool\|store\|nbd\|control\|cli\)/' "$root/include/uzram"; then
  echo "layering: public headers must not include src/"; fail=1
fi
[[ $fail -eq 0 ]] && echo "layering: ok"
exit $fail
