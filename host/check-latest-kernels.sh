#!/usr/bin/env bash
# Reports whether Debian's newest cloud kernels still work with kscope. It does not gate CI
# (the tests run against the kernels pinned in host/kernels.lock); run it by hand or on a
# schedule, and move the pin with host/update-kernels.sh when it is green.
#
# For each series: fetches the newest release, extracts its layout from DWARF, lists what
# changed against the pinned recording, boots a web parent on it, snapshots and colors the
# snapshot, and reads the map back (map info validates every section). Prints one line per
# series and exits non-zero if any failed.
#
#   host/check-latest-kernels.sh [6.1] [6.12]      (default: both)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache=${KSCOPE_CACHE:-/var/cache/kscope}/kernels
(($#)) || set -- 6.1 6.12
cd "$root"
"$here/setup.sh" --packages >&2 || exit 1
swift build --product kscope >&2 || exit 1
kscope=$(swift build --show-bin-path)/kscope
work=$(mktemp -d /var/tmp/kscope-latest.XXXXXX)
vm=kscope-latest-check
trap '"$kscope" vm stop "$vm" >/dev/null 2>&1; rm -rf "$work"' EXIT
failed=0
for series in "$@"; do
  pinned=$(awk -v s="$series" '!/^#/ && $1 == s {print $2; exit}' "$here/kernels.lock")
  latest=$("$here/fetch-kernels.sh" --latest "$series" | awk '{print $2}') || { echo "$series: cannot fetch the newest kernel"; failed=1; continue; }
  step() { echo "check-latest: $series $latest: $*" >&2; }
  fail() { echo "$series-latest $latest: FAILED at $*"; failed=1; }
  step "layout"
  "$kscope" layout extract "$cache/$latest/vmlinux" -o "$work/$latest.json" || { fail "layout extract"; continue; }
  changed="same release as the pin"
  if [[ $latest != "$pinned" ]]; then
    if cmp -s <(grep -v '"build_id"\|"banner"\|"address"' "$work/$latest.json") \
      <(grep -v '"build_id"\|"banner"\|"address"' "Tests/KscopeLayoutTests/Recorded/$pinned.json"); then
      changed="no struct offset or enum value changed since $pinned"
    else
      changed="offsets or enums differ from $pinned (host/update-kernels.sh re-records)"
    fi
  fi
  step "boot, snapshot, color"
  "$kscope" vm stop "$vm" >/dev/null 2>&1
  "$kscope" vm start "$vm" --kernel "$series-latest" --workload web >&2 || { fail "vm start"; continue; }
  "$kscope" vm snapshot "$vm" -o "$work/snap" >&2 || { fail "vm snapshot"; continue; }
  "$kscope" vm stop "$vm" >/dev/null 2>&1
  "$kscope" color "$work/snap" --layout "$work/$latest.json" -o "$work/map.kcm" >&2 || { fail "color"; continue; }
  "$kscope" map info "$work/map.kcm" >"$work/info.txt" || { fail "map info"; continue; }
  rm -rf "$work/snap"
  echo "$series-latest $latest: works (layout, boot, snapshot, color); $changed; pinned $pinned"
done
exit $failed
