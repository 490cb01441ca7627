#!/usr/bin/env bash
# Two kscope builds on the same inputs, alternating, one untimed run then 5 each; GNU time:
# median wall, max peak RSS.  host/bench/libs/compare.sh OLD/kscope NEW/kscope MAP.kcm
# (OLD: e.g. git archive 7300372 | tar -x -C /tmp/old; swift build -c release there).
OLD=$1
NEW=$2
MAP=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
python3 "$here/isf.py" $((61 << 20)) "$out/isf61.json"
python3 "$here/isf.py" $((7 << 20 | 1 << 19)) "$out/isf7.json"
V=/var/cache/kscope/kernels/6.1/vmlinux
"$(dirname "$NEW")/kscope-bench" btf --extract /var/cache/kscope/kernels/6.12/vmlinuz $out/b612.btf >/dev/null
cmp() {
  local name=$1; shift
  for who in OLD NEW; do : > $out/cmp.$who; done
  for i in 1 2 3 4 5 6; do
    for who in OLD NEW; do
      bin=${!who}
      /usr/bin/time -f "%e %M" -o $out/t.$who "$bin" "$@" >/dev/null 2>&1
      [[ $i -gt 1 ]] && tail -1 $out/t.$who >> $out/cmp.$who
    done
  done
  for who in OLD NEW; do
    python3 -c "
import statistics,sys
r=[l.split() for l in open('$out/cmp.$who')]
print('%-4s %-28s median %.3f s, max RSS %.1f MiB' % ('$who', '$name', statistics.median(float(a) for a,b in r), max(int(b) for a,b in r)/1024))"
  done
}
cmp "layout extract (DWARF 6.1)" layout extract $V -o $out/x.json
cmp "layout extract (BTF 6.12)" layout extract $out/b612.btf --types-only -o $out/y.json
cmp "layout show 7.6 MiB ISF" layout show $out/isf7.json
cmp "layout import 62 MiB ISF" layout import $out/isf61.json -o $out/z.json
cmp "map info 15.5 MB" map info "$MAP"
cmp "kscope --help" --help
