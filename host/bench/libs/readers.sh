#!/usr/bin/env bash
# Peak RSS (GNU time's %M, the kernel's ru_maxrss) of each reader of untrusted files on large
# valid inputs, for the README's Security section:
#   host/bench/libs/readers.sh MAP.kcm HINTS     (after swift build -c release; K=path/to/kscope)
# The baseline is the same process on the recorded 80 KB layout: what a kscope command takes
# before it reads anything large.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
K=${K:-$root/.build/release/kscope}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 "$here/isf.py" $((61 << 20)) "$out/isf61.json"
python3 "$here/isf.py" $((7 << 20 | 1 << 19)) "$out/isf7.json"
m() {
  /usr/bin/time -f "%M %e" "$@" >/dev/null 2>"$out/time" || { cat "$out/time"; exit 1; }
  read -r kib secs < <(tail -1 "$out/time")
  echo "peak RSS $((kib / 1024)) MiB, $secs s: ${*#"$K" }"
}
for f in "$out/isf61.json" "$out/isf7.json" "$1" "$2"; do echo "input $(stat -c %s "$f") bytes: $f"; done
m "$K" layout show "$root/Tests/KscopeLayoutTests/Recorded/6.12.117+deb12-cloud-amd64.json"
m "$K" layout import "$out/isf61.json" -o "$out/imported.json"
m "$K" layout show "$out/isf7.json"
m "$K" map info "$1"
m "$K" hints read "$2"
