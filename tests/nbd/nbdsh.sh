#!/usr/bin/env bash
# nbdsh (libnbd's Python shell) drives each command and error: nbdsh_test.py.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
per_unit "$@"
need nbdsh
# nbdsh runs `python3` from PATH: prefer the system one, which has the nbd module.
export PATH=/usr/bin:$PATH
nbdsh -c pass 2>/dev/null || skip "nbdsh cannot import the nbd module (Debian: python3-libnbd)"
export script=$here/nbdsh_test.py
captive 'uri="$uri" nbdsh -c "exec(open(\"$script\").read())"'
