#!/usr/bin/env bash
# The main job on its defaults, end to end on real VMs. Run as root on Debian 12: host/run.sh
#
#  1. installs what it needs (packages, QEMU, Debian's cloud kernels, the static guest agent;
#     cached) and builds kscope (release);
#  2. boots a warm parent VM (Debian 6.1 cloud kernel, QEMU TCG, 512 MiB, web workload, the
#     guest agent), drives its workload, snapshots it (the parent keeps running);
#  3. the snapshot is colored (host analysis merged with the agent's hints, by vm snapshot):
#     summary, and a picture with the physical address grid;
#  4. clones it lazily twice, with the kaleidoscope policy and with on-demand (one clone engine
#     each, started on demand), runs the workload on both, checks they answer exactly as the
#     parent did, and prints the comparison (start time, throughput, faults, pages fetched).
# Everything it writes goes to $KSCOPE_OUT (default /var/tmp/kscope); its VMs are stopped (and
# with them the engines) when it ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setting up (packages, QEMU, guest kernels, agent; cached after the first run)" >&2
host/setup.sh >&2
# swift build prints its own [n/m] progress; the first release build takes several minutes.
echo "== building kscope (release)" >&2
swift build -c release --product kscope >&2
kscope=$(swift build -c release --show-bin-path)/kscope
out=${KSCOPE_OUT:-/var/tmp/kscope}
parent=kscope-main
clones=(kscope-main-kaleidoscope kscope-main-on-demand)
mkdir -p "$out"
cleanup() {
  for c in "${clones[@]}" "$parent"; do "$kscope" vm stop "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
cleanup
rm -rf "$out/snapshot"

step() { printf '\n== %s\n' "$*"; }
step "boot a parent VM with the guest agent"
"$kscope" vm start "$parent" --kernel 6.1 --workload web
step "drive its workload"
"$kscope" workload web --vm "$parent" --requests 200 --json > "$out/parent-workload.json"
step "wait for the agent's hints (it refreshes now on SIGUSR1)"
vmdir=$("$kscope" vm list --json | python3 -c 'import json,sys; print(next(v["directory"] for v in json.load(sys.stdin)["vms"] if v["name"] == sys.argv[1]))' "$parent")
"$kscope" vm exec "$parent" 'kill -USR1 $(pidof kscope)' >/dev/null
for _ in $(seq 1 120); do
  "$kscope" hints read "$vmdir/hints" >/dev/null 2>&1 && break
  sleep 1
done
"$kscope" hints read "$vmdir/hints" | head -4
step "snapshot it and color the snapshot (host analysis + the agent's hints; the parent keeps running)"
"$kscope" vm snapshot "$parent" -o "$out/snapshot" --resume
"$kscope" map info "$out/snapshot/map.kcm"
"$kscope" map render "$out/snapshot/map.kcm" -o "$out/parent.png" --grid
echo "picture: $out/parent.png"
for c in "${clones[@]}"; do
  policy=${c#kscope-main-}
  step "clone it lazily ($policy) and drive the clone"
  "$kscope" vm clone "$out/snapshot" --name "$c" --lazy --policy "$policy" --json > "$out/$policy-clone.json"
  "$kscope" workload web --vm "$c" --requests 200 --json > "$out/$policy-workload.json"
  "$kscope" vm stats "$c" --json > "$out/$policy-stats.json"
  "$kscope" vm stats "$c"
done
step "comparison"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
parent = json.load(open(f"{out}/parent-workload.json"))
print(f"{'':14} {'to vCPU ms':>10} {'first answer ms':>15} {'req/s':>7} {'demand faults':>13} {'pages fetched':>13} {'holes':>7}  answers")
print(f"{'parent':14} {'':>10} {'':>15} {parent['requests_per_second']:7.1f}")
ok = True
for policy in ["kaleidoscope", "on-demand"]:
    c = json.load(open(f"{out}/{policy}-clone.json"))
    w = json.load(open(f"{out}/{policy}-workload.json"))
    s = json.load(open(f"{out}/{policy}-stats.json"))
    t = c["timings_s"]
    same = w["digest"] == parent["digest"]
    ok = ok and same
    print(f"{policy:14} {t['to_vcpu_running']*1000:10.0f} {t['to_first_answer']*1000:15.0f} {w['requests_per_second']:7.1f} "
          f"{s['clone']['demand_faults']:13} {s['engine']['pages_fetched']:13} {s['engine']['holes']:7}  {'= parent' if same else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
