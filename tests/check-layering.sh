#!/usr/bin/env bash
# Fails when a layer includes a higher one. Order: util -> sync -> pool -> store -> nbd -> cli
# (the cli's `serve` subcommand embeds the NBD server).
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
check util sync pool store nbd cli
check sync pool store nbd cli
check pool store nbd cli
check store nbd cli
check nbd cli
if grep -rn '#include "\(util\|sync\|pool\|store\)/' "$root/include/uzram"; then
  echo "layering: public headers must not include src/"; fail=1
fi
[[ $fail -eq 0 ]] && echo "layering: ok"
exit $fail
