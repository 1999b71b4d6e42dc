#!/usr/bin/env bash
# Fails when a reference to a document or a section of one does not resolve. Scans src/,
# include/, tests/, bench/, scripts/, docs/, README.md and CONTRIBUTING.md for
#   - FILE.md#ANCHOR (with any path: docs/locking.md#alloc, locking.md#alloc, ../README.md#x):
#     the file and the anchor must exist;
#   - docs/FILE.md (any file under docs/ cited by path): the file must exist;
#   - in Markdown files, relative links [text](PATH), [text](PATH#ANCHOR), [text](#ANCHOR).
# A bare FILE.md resolves against the citing file's directory, then the repository root,
# then docs/. Anchors are GitHub's: from each heading outside code fences, lowercased,
# punctuation dropped, spaces turned into '-', repeats suffixed -1, -2...; plus explicit
# <a id="..."> / <a name="..."> and {#...}. Web links (http://, https://) are not checked.
# Usage: check-doc-refs.sh [ROOT]
set -euo pipefail
root=$(cd "${1:-.}" && pwd)
cd "$root"
export LC_ALL=C
# This script and its self-test cite made-up files on purpose.
skip=(tests/check-doc-refs.sh tests/check-doc-refs-test.sh)

anchors_of() {  # the anchors of Markdown file $1, one per line
  awk '
    /^[ \t]*(```|~~~)/ { fence = !fence; next }
    fence { next }
    /^#+[ \t]/ {
      h = $0
      sub(/^#+[ \t]+/, "", h)
      sub(/[ \t]+#+[ \t]*$/, "", h)
      h = tolower(h)
      gsub(/[^a-z0-9 _-]/, "", h)
      gsub(/ /, "-", h)
      a = h
      if (h in seen) a = h "-" seen[h]
      seen[h]++
      print a
    }
    {
      line = $0
      while (match(line, /<a (id|name)="[^"]+"/)) {
        s = substr(line, RSTART, RLENGTH)
        sub(/^<a (id|name)="/, "", s)
        sub(/"$/, "", s)
        print s
        line = substr(line, RSTART + RLENGTH)
      }
      line = $0
      while (match(line, /\{#[A-Za-z0-9_-]+\}/)) {
        print substr(line, RSTART + 2, RLENGTH - 3)
        line = substr(line, RSTART + RLENGTH)
      }
    }' "$1"
}

normalize() {  # normalize PATH: drops ./ and resolves dir/../ without touching the disk
  local IFS=/ part out=()
  read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    case "$part" in
      '' | .) ;;
      ..) if ((${#out[@]})) && [[ ${out[-1]} != .. ]]; then unset 'out[-1]'; else out+=(..); fi ;;
      *) out+=("$part") ;;
    esac
  done
  echo "${out[*]}"
}

resolve() {  # resolve CITING_FILE PATH: the repository file PATH names, or nothing
  local from=$1 path=$2 c
  if [[ -z $path ]]; then
    echo "$from"
    return
  fi
  for c in "$(dirname "$from")/$path" "$path" "docs/$path"; do
    c=$(normalize "$c")
    if [[ -f $c ]]; then
      echo "$c"
      return
    fi
  done
}

declare -A anchors=()  # "FILE#ANCHOR" -> 1, for every Markdown file loaded
declare -A loaded=()
has_anchor() {  # has_anchor FILE ANCHOR
  local file=$1 a
  if [[ -z ${loaded[$file]:-} ]]; then
    loaded[$file]=1
    while IFS= read -r a; do anchors["$file#$a"]=1; done < <(anchors_of "$file")
  fi
  [[ -n ${anchors["$file#$2"]:-} ]]
}

fail=0
checked=0
check() {  # check CITING_FILE LINE PATH ANCHOR (ANCHOR may be empty: the file only)
  local from=$1 line=$2 path=$3 anchor=$4 target
  checked=$((checked + 1))
  target=$(resolve "$from" "$path")
  if [[ -z $target ]]; then
    echo "doc-refs: $from:$line: $path${anchor:+#$anchor}: no such file"
    fail=1
  elif [[ -n $anchor ]] && ! has_anchor "$target" "$anchor"; then
    echo "doc-refs: $from:$line: $path#$anchor: no such section in $target"
    fail=1
  fi
}

scan=(src include tests bench scripts docs README.md CONTRIBUTING.md)
existing=()
for s in "${scan[@]}"; do [[ -e $s ]] && existing+=("$s"); done

# FILE.md#ANCHOR and docs/FILE paths, anywhere. A web link is matched whole and skipped.
ref='(https?://[^[:space:])>"]*)?[A-Za-z0-9_./-]*\.md#[A-Za-z0-9_-]+'
docpath='(https?://[^[:space:])>"]*)?(\.\./)*docs/[A-Za-z0-9_./-]*[A-Za-z0-9_]\.[a-z]+'
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  text=${rest#*:}
  [[ " ${skip[*]} " == *" $file "* || $text == http* ]] && continue
  if [[ $text == *'#'* ]]; then
    check "$file" "$line" "${text%%#*}" "${text#*#}"
  else
    check "$file" "$line" "$text" ""
  fi
done < <(grep -rnoIE --exclude-dir=build -e "$ref" -e "$docpath" "${existing[@]}" || true)

# Relative Markdown links: [text](PATH), [text](PATH#ANCHOR), [text](#ANCHOR).
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  target=${rest#*:}
  target=${target#](}
  target=${target%)}
  target=${target%% *}  # [text](path "title")
  case "$target" in
    http://* | https://* | mailto:* | '') continue ;;
  esac
  if [[ $target == *'#'* ]]; then
    check "$file" "$line" "${target%%#*}" "${target#*#}"
  else
    check "$file" "$line" "$target" ""
  fi
done < <(find "${existing[@]}" -name build -prune -o -name '*.md' -type f -print0 |
           xargs -0 -r grep -HnoE '\]\([^)[:space:]]+( "[^"]*")?\)' || true)

if [[ $fail -eq 0 ]]; then
  echo "doc-refs: ok ($checked references)"
fi
exit $fail
