#!/usr/bin/env bash
# Moves the pinned guest kernels to Debian's newest releases, in one step:
#   1. resolves and fetches the newest release of each series (host/fetch-kernels.sh --latest),
#   2. records its layout from the vmlinux's DWARF into Tests/KscopeLayoutTests/Recorded/,
#      removing the recording of the release it replaces,
#   3. rewrites that series' line of host/kernels.lock (Debian version, both .debs' SHA-256),
#   4. points kernels/<series> at it.
# Then run host/test.sh and commit the lock file with the new recording.
#
#   host/update-kernels.sh [6.1] [6.12]       (default: both)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lock=$here/kernels.lock
cache=${KSCOPE_CACHE:-/var/cache/kscope}/kernels
recorded=$root/Tests/KscopeLayoutTests/Recorded

(($#)) || set -- 6.1 6.12
cd "$root"
swift build --product kscope >&2
kscope=$(swift build --show-bin-path)/kscope

field() { apt-cache show "$1" | awk -v f="$2:" '$1 == f {print $2; exit}'; }

for series in "$@"; do
  old=$(awk -v s="$series" '!/^#/ && $1 == s {print $2; exit}' "$lock")
  new=$("$here/fetch-kernels.sh" --latest "$series" | awk '{print $2}')
  if [[ $old == "$new" ]]; then echo "update-kernels: $series stays at $new (newest)"; continue; fi
  echo "update-kernels: $series $old -> $new" >&2
  "$kscope" layout extract "$cache/$new/vmlinux" -o "$recorded/$new.json"
  debver=$(field "linux-image-$new-unsigned" Version)
  sha_u=$(field "linux-image-$new-unsigned" SHA256)
  sha_d=$(field "linux-image-$new-dbg" SHA256)
  [[ -n $debver && -n $sha_u && -n $sha_d ]] || { echo "update-kernels: apt-cache show knows no $new" >&2; exit 1; }
  tmp=$(mktemp "$lock.XXXXXX")
  awk -v s="$series" -v line="$series	$new	$debver	$sha_u	$sha_d" \
    '!/^#/ && $1 == s {print line; found=1; next} {print} END {if (!found) print line}' "$lock" >"$tmp"
  mv "$tmp" "$lock"
  if [[ -n $old && -f $recorded/$old.json ]]; then
    git rm -q "$recorded/$old.json" 2>/dev/null || rm -f "$recorded/$old.json"
  fi
  ln -sfn "$new" "$cache/$series"
  echo "update-kernels: $series pinned at $new; run host/test.sh, then commit host/kernels.lock and $recorded/$new.json"
done
