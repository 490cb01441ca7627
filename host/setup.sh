#!/usr/bin/env bash
# Installs everything kscope's build and tests need on a Debian 12 host, idempotently:
# system packages (elfutils headers, QEMU, busybox, ...) and the Debian cloud guest kernels
# (bzImage, vmlinux with DWARF, modules), unpacked into a cache keyed by exact version.
#
#   host/setup.sh             packages + kernels (6.1 and 6.12 series)
#   host/setup.sh --packages  system packages only
#   host/setup.sh --bench     everything, plus what the evaluations need (matplotlib from PyPI)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(
  pkg-config libdw-dev libelf-dev zlib1g-dev   # libdw/libelf for DWARF, zlib for PNG
  elfutils dwarves binutils                    # eu-readelf, pahole, nm (layout checks, benchmark)
  qemu-system-x86 busybox-static cpio zstd e2fsprogs sqlite3
  hyperfine time                               # time: exact peak RSS of a child (reader memory tests)
  jq                                           # JSON outputs must survive a round trip through jq
  nbdkit libnbd-dev                            # remote page source: server, client library
  gcc libc6-dev                                # builds the guest-side kpageflags recorder
  libzstd-dev liblz4-dev liblzma-dev           # vmlinuz payloads (zstd, lz4, xz) for layouts from BTF
  libssl-dev                                   # libcrypto's SHA-256 (image cache keys, workload digests)
  libxxhash-dev                                # XXH3 for the RAM content digest
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ ${1:-} == --packages ]] && exit 0
if [[ ${1:-} == --bench ]]; then
  python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install -q matplotlib
fi
"$here/fetch-kernels.sh" 6.1 6.12

# The lazy clones' QEMU hand-off shim (LD_PRELOAD), rebuilt when its source or the ABI header
# changes: <cache>/lib/kscope-shim-<hash>.so, linked as kscope-shim.so.
cache=${KSCOPE_CACHE:-/var/cache/kscope}
src="$here/shim/kscope-shim.c"
abi="$here/../Sources/CKscopeLinux/include/kscope_handoff.h"
hash=$(cat "$src" "$abi" | sha256sum | cut -c1-16)
so="$cache/lib/kscope-shim-$hash.so"
if [[ ! -e $so ]]; then
  mkdir -p "$cache/lib"
  gcc -shared -fPIC -O2 -Wall -Werror -I "$here/../Sources/CKscopeLinux/include" -o "$so.tmp" "$src" -ldl -lpthread
  mv "$so.tmp" "$so"
fi
ln -sfn "$(basename "$so")" "$cache/lib/kscope-shim.so"
find "$cache/lib" -name "kscope-shim-*.so" ! -name "$(basename "$so")" -delete

# The guest agent as parents get it by default (`kscope vm start` installs it unless --no-agent):
# a release build with the Swift stdlib linked in statically, cached by a hash of its sources as
# <cache>/agent/kscope-agent-<hash>, linked as kscope-agent.
repo="$here/.."
ahash=$(cd "$repo" && find Package.swift Sources/KscopeAgent Sources/kscope-agent Sources/KscopeCore Sources/KscopeOS Sources/CZstd \
  -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
agent="$cache/agent/kscope-agent-$ahash"
if [[ ! -x $agent ]]; then
  echo "setup: building the static guest agent (release)" >&2
  mkdir -p "$cache/agent"
  swift build -c release --static-swift-stdlib --product kscope-agent --package-path "$repo" \
    --scratch-path "$cache/agent/build" >&2
  cp "$cache/agent/build/release/kscope-agent" "$agent.tmp"
  strip "$agent.tmp"
  mv "$agent.tmp" "$agent"
fi
ln -sfn "$(basename "$agent")" "$cache/agent/kscope-agent"
find "$cache/agent" -maxdepth 1 -name "kscope-agent-*" ! -name "$(basename "$agent")" -delete
