#!/usr/bin/env bash
# The main job on its defaults, end to end on real VMs. Run as root on Debian 12: host/run.sh
#
#  1. installs what it needs (packages, QEMU, Debian's 6.1 and 6.12 cloud kernels; cached)
#     and builds kscope (release);
#  2. boots a parent VM (Debian 6.1 cloud kernel, QEMU TCG, 512 MiB, web workload), drives its
#     workload, snapshots it (the parent keeps running);
#  3. colors the snapshot from outside (the host analyzer) into a color map, describes it and
#     draws it as a picture with the physical address grid;
#  4. eager-clones the snapshot and checks that the clone serves the same answers;
#  5. colors this machine's own memory from /proc/kpageflags, for comparison.
# Everything it writes goes to $KSCOPE_OUT (default /var/tmp/kscope); its VMs are stopped when
# it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setting up (packages, QEMU, guest kernels; cached after the first run)" >&2
host/setup.sh >&2
# swift build prints its own [n/m] progress; the first release build takes several minutes.
echo "== building kscope (release)" >&2
swift build -c release --product kscope >&2
kscope=$(swift build -c release --show-bin-path)/kscope
out=${KSCOPE_OUT:-/var/tmp/kscope}
parent=kscope-main
clone=kscope-main-clone
mkdir -p "$out"
cleanup() { "$kscope" vm stop "$clone" >/dev/null 2>&1 || true; "$kscope" vm stop "$parent" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$out/snapshot"

step() { printf '\n== %s\n' "$*"; }
step "boot a parent VM"
"$kscope" vm start "$parent" --kernel 6.1 --workload web
step "drive its workload"
"$kscope" workload web --vm "$parent" --requests 200 | tee "$out/parent-workload.txt"
step "snapshot it (the parent keeps running)"
"$kscope" vm snapshot "$parent" -o "$out/snapshot" --resume
step "color the snapshot from outside"
"$kscope" color "$out/snapshot" -o "$out/parent.kcm"
"$kscope" map render "$out/parent.kcm" -o "$out/parent.png" --grid
echo "picture: $out/parent.png"
step "which cached files are in the parent's page cache (first runs)"
"$kscope" map query "$out/parent.kcm" --color page-cache --limit 8
step "eager-clone the snapshot and drive the clone"
"$kscope" vm clone "$out/snapshot" --name "$clone"
"$kscope" workload web --vm "$clone" --requests 200 | tee "$out/clone-workload.txt"
p=$(grep -o 'digest [0-9a-f]*' "$out/parent-workload.txt")
c=$(grep -o 'digest [0-9a-f]*' "$out/clone-workload.txt")
if [[ -n $p && $p == "$c" ]]; then echo "the clone answers exactly like its parent ($p)"; else
  echo "the clone's answers differ from its parent's ($p vs $c)" >&2; exit 1; fi
step "this machine's own memory, from /proc/kpageflags"
"$kscope" color -o "$out/host.kcm"
