#!/bin/bash
# Builds and runs one of kscope's libFuzzer targets (issue 10: a fuzz target per untrusted reader).
#
#   host/fuzz.sh TARGET SECONDS [CORPUS_DIR]    TARGET: colormap | layout | hints | manifest
#
# The modules are built once with -sanitize=fuzzer,address into .build-fuzz (release); the
# target's entry file (compiled out of the package by an undefined KSCOPE_LIBFUZZER_* flag) is
# compiled alone against them and linked into .build-fuzz/TARGET-fuzzer. The run: a 5 s limit
# per input, a 2 GiB RSS limit, and -malloc_limit_mb (no single allocation over that while an
# input runs: the inputs are at most -max_len bytes, so a reader that trusted a declared size
# would trip it). Seeds: CORPUS_DIR if given (kept and grown), else a fresh directory with the
# recorded layouts (layout) or nothing (the others). Findings are written as crash-*/timeout-*/
# oom-*/malloc-limit-* files in .build-fuzz/TARGET-findings. Prints libFuzzer's log to stderr
# and its final lines (executions, peak RSS) to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: host/fuzz.sh colormap|layout|hints|manifest SECONDS [CORPUS_DIR]}
seconds=${2:?usage: host/fuzz.sh TARGET SECONDS [CORPUS_DIR]}
corpus=${3:-}
build=.build-fuzz
case "$target" in
  colormap) entry=Sources/KscopeCore/ColorMap/ColorMapFuzzEntry.swift flag=KSCOPE_LIBFUZZER_COLORMAP max_len=20000 malloc_mb=1 ;;
  layout) entry=Sources/KscopeLayout/LayoutFuzzEntry.swift flag=KSCOPE_LIBFUZZER_LAYOUT max_len=200000 malloc_mb=16 ;;
  hints) entry=Sources/KscopeKernelImage/HintFuzzEntry.swift flag=KSCOPE_LIBFUZZER_HINTS max_len=70000 malloc_mb=1 ;;
  manifest) entry=Sources/KscopeSnapshot/ManifestFuzzEntry.swift flag=KSCOPE_LIBFUZZER_MANIFEST max_len=8192 malloc_mb=1 ;;
  *) echo "fuzz.sh: unknown target '$target' (colormap, layout, hints, manifest)" >&2; exit 2 ;;
esac

# Every module any entry needs; -sanitize=fuzzer on a library only instruments it.
for module in KscopeKernelImage KscopeSnapshot; do
  swift build -c release --build-path "$build" --target "$module" \
    -Xswiftc -sanitize=fuzzer,address >&2
done
bin=$build/release
modmaps=()
# The C modules kscope's modules import (zstd..., swift-system's CSystem).
for m in Sources/C*/module.modulemap $(find "$build/checkouts/swift-system" -name module.modulemap); do
  modmaps+=(-Xcc "-fmodule-map-file=$PWD/$m")
done
objects=$(find "$bin"/ -path "$bin/*.build/*.o" ! -path "$bin/kscope*.build/*" | sort)
fuzzer=$build/$target-fuzzer
swiftc -parse-as-library -module-name "${flag,,}" -D "$flag" -O -sanitize=fuzzer,address \
  -I "$bin/Modules" "${modmaps[@]}" "$entry" $objects -lzstd -llz4 -llzma -lz -o "$fuzzer" >&2

# Seeds, made fresh with kscope's own writers where there is one.
kscope=${KSCOPE:-.build/debug/kscope}
agent=${KSCOPE_AGENT_BINARY:-/var/cache/kscope/agent/kscope-agent}
seed() {
  case "$target" in
    colormap)
      # Two small maps of this machine's page flags (2,000 frames each; needs root).
      [ -x "$kscope" ] || { echo "fuzz.sh: build kscope first (swift build) or set KSCOPE" >&2; exit 1; }
      for skip in 0 4000; do
        dd if=/proc/kpageflags of="$1/kpf" bs=8 skip=$skip count=2000 status=none
        "$kscope" color --kpageflags "$1/kpf" -o "$1/map-$skip.kcm" >/dev/null
      done
      rm -f "$1/kpf" ;;
    layout) cp Tests/KscopeLayoutTests/Recorded/*.json "$1"/ ;;
    hints)
      # Regions the guest agent writes (run on this host: its frames cut to fit 64 KiB), and
      # raw BTF from pahole of a small C file (what a published BTF section decompresses to).
      [ -x "$agent" ] || { echo "fuzz.sh: no guest agent at $agent (host/setup.sh)" >&2; exit 1; }
      "$agent" --out "$1/region-files" --size 65536 --once --no-btf --no-frames --root /usr/share/doc --max-files 200 >/dev/null
      "$agent" --out "$1/region-frames" --size 65536 --once --no-btf --no-files >/dev/null
      printf 'struct list { struct list *next, *prev; };\nstruct page { unsigned long flags; struct list lru; int refs; union { long a; char b[8]; } u; };\nenum pagetype { PGTY_buddy = 0xf0 };\nstruct page p; enum pagetype t;\n' >"$1/t.c"
      gcc -g -c "$1/t.c" -o "$1/t.o" && pahole --btf_encode_detached="$1/raw.btf" "$1/t.o"
      rm -f "$1/t.c" "$1/t.o" ;;
    manifest)
      cat >"$1/manifest.json" <<'JSON'
{"completed_at":"2026-12-03T16:00:33.353Z","cpus":1,"device_state":"device.state","device_state_seconds":0.0257,"format":"kscope-snapshot/1","hint_size":4194304,"hints":"hints",
 "image":{"data_disk":"/dev/shm/kscope/images/b97b6669ecb139ed/data.ext4","has_agent":false,"initramfs":"/dev/shm/kscope/images/b97b6669ecb139ed/initramfs.cpio","key":"b97b6669ecb139ed","olap_mib":200,"workload":"web"},
 "kernel":{"build_id":"3b43fad5034874490492495d552c0af6a5fab235","directory":"/var/cache/kscope/kernels/6.1.0-56-cloud-amd64","release":"6.1.0-56-cloud-amd64","series":"6.1","version":"#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"},
 "memory_layout":[{"file_offset":0,"guest_physical_start":0,"size":2147483648},{"file_offset":2147483648,"guest_physical_start":4294967296,"size":2147483648}],
 "paused_at":"2026-12-03T16:00:33.127Z","qemu_command_line":["qemu-system-x86_64","-m","4G"],"ram":"ram","ram_bytes_copied":115441664,"ram_copy_seconds":0.1988,"ram_size":4294967296,"vm_name":"oracle"}
JSON
      ;;
  esac
}
if [ -z "$corpus" ]; then
  corpus=$build/$target-corpus
  rm -rf "$corpus"
  mkdir -p "$corpus"
  seed "$corpus"
fi
findings=$build/$target-findings
mkdir -p "$findings"
log=$build/$target-fuzz.log
set +e
"$fuzzer" -max_len=$max_len -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
  -malloc_limit_mb=$malloc_mb -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" 2>"$log"
status=$?
set -e
tail -n 25 "$log"
echo "fuzz.sh: $target exited $status; log $log, findings in $findings"
exit $status
