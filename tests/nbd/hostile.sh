#!/usr/bin/env bash
# Raw-socket clients that break the protocol: hostile_test.py.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
export script=$here/hostile_test.py
captive 'uri="$uri" python3 "$script"'
