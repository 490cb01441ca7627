#!/usr/bin/env bash
# Hash speeds behind issue 11's library choices, in one run on the same 256 MiB buffer:
# kscope's Swift XXH64 vs Debian's libxxhash (XXH64, XXH3), and the hand-written Swift SHA-256
# (as of commit 41d715e, before the switch) vs libcrypto and libgcrypt.
# Then kscope's JSON reader vs Foundation's JSONSerialization on a 60 MiB ISF (time, peak RSS,
# 64-bit exactness), each in its own process.
# With a PNG that kscope rendered (kscope map render MAP -o P.png): kscope's PNG encoder vs
# libpng (level 9, all filters) on its pixels.
#   host/bench/libs/run.sh [P.png]   (needs libxxhash-dev, libssl-dev, libgcrypt20-dev, libpng-dev)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
gcc -O2 -o "$out/hashes" "$here/hashes.c" -lxxhash -lcrypto -lgcrypt
git -C "$root" show 41d715e:Sources/KscopeVM/SHA256.swift > "$out/SHA256.swift"
cp "$here/main.swift" "$out/main.swift"
swiftc -O -o "$out/swifthashes" "$out/main.swift" "$root/Sources/KscopeCore/XXH64.swift" "$out/SHA256.swift"
"$out/hashes"
"$out/swifthashes"
python3 "$here/isf.py" $((60 << 20)) "$out/isf.json"
mkdir -p "$out/jsonmain" && cp "$here/json.swift" "$out/jsonmain/main.swift"
swiftc -O -o "$out/json" "$out/jsonmain/main.swift" "$root/Sources/KscopeLayout/JSON.swift"
"$out/json" ours "$out/isf.json"
"$out/json" foundation "$out/isf.json"
if [[ $# -ge 1 ]]; then
  gcc -O2 -o "$out/png" "$here/png.c" -lpng
  "$out/png" "$1" "$out/map.rgb" > "$out/png.txt"
  size=$(file "$1" | sed -n 's/.*PNG image data, \([0-9]*\) x \([0-9]*\).*/\1 \2/p')
  mkdir -p "$out/pngmain" && cp "$here/pngmain.swift" "$out/pngmain/main.swift"
  sed -n '/^public struct RGB/,/^}/p' "$root/Sources/KscopeRender/Palette.swift" > "$out/pngmain/rgb.swift"
  swiftc -O -o "$out/pngbench" -I "$root/Sources/CZlib" "$out/pngmain/main.swift" "$out/pngmain/rgb.swift" \
    "$root"/Sources/KscopeRender/{PNG,Canvas,RenderError,BitmapFont}.swift -lz
  "$out/pngbench" "$out/map.rgb" $size
  cat "$out/png.txt"
fi
