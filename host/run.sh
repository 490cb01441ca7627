#!/usr/bin/env bash
# The main job on its defaults: build kscope (release), color this machine's own memory from
# /proc/kpageflags into a color map, and describe it. Run as root on Debian 12: `host/run.sh`.
# The map is written to $KSCOPE_STATE (default /var/tmp/kscope)/host.kcm.
set -euo pipefail
cd "$(dirname "$0")/.."
host/setup.sh --packages
swift build -c release --product kscope >&2
state=${KSCOPE_STATE:-/var/tmp/kscope}
mkdir -p "$state"
kscope=$(swift build -c release --show-bin-path)/kscope
"$kscope" color -o "$state/host.kcm"
echo
"$kscope" map info "$state/host.kcm"
echo
echo "free page frames, first runs:"
"$kscope" map query "$state/host.kcm" --color free --limit 5
