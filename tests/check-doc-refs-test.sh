#!/usr/bin/env bash
# Self-test of check-doc-refs.sh on a scratch tree: GitHub anchors (punctuation, repeats,
# code fences, explicit ids) resolve, and each kind of dangling reference is reported.
set -euo pipefail
check="$(cd "$(dirname "$0")" && pwd)/check-doc-refs.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uzram-doc-refs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/docs" "$tmp/src"
cat >"$tmp/docs/a.md" <<'MD'
# Title
## The store's locks (zram layer)
### Debug checks (LEVEL >= 2; dev)
## Same
## Same
```
# not a heading
```
<a id="explicit"></a>
See [b](b.md#only) and [self](#same-1).
MD
printf '# B\n## Only\n' >"$tmp/docs/b.md"
cat >"$tmp/src/x.cc" <<'CC'
// docs/a.md#the-stores-locks-zram-layer, a.md#debug-checks-level--2-dev, docs/a.md#same
// docs/a.md#same-1 docs/a.md#explicit docs/b.md https://example.org/c.md#anything
CC
if ! out=$("$check" "$tmp"); then
  echo "$out"
  echo "check-doc-refs-test: good references refused"
  exit 1
fi
echo "$out"
cat >>"$tmp/src/x.cc" <<'CC'
// docs/a.md#not-a-heading docs/a.md#same-2 docs/none.md#x docs/none.md
CC
echo '[gone](c.md) [nowhere](#nowhere)' >>"$tmp/docs/b.md"
if out=$("$check" "$tmp"); then
  echo "$out"
  echo "check-doc-refs-test: dangling references accepted"
  exit 1
fi
echo "$out"
for want in 'a.md#not-a-heading' 'a.md#same-2' 'none.md#x: no such file' \
            'docs/none.md: no such file' 'c.md: no such file' '#nowhere: no such section'; do
  grep -qF -- "$want" <<<"$out" || { echo "check-doc-refs-test: '$want' not reported"; exit 1; }
done
echo "check-doc-refs-test: ok"
