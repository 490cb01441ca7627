#!/usr/bin/env bash
# Installs everything kscope's build and tests need on a Debian 12 host, idempotently:
# system packages (elfutils headers, QEMU, busybox, ...) and the Debian cloud guest kernels
# (bzImage, vmlinux with DWARF, modules), unpacked into a cache keyed by exact version.
#
#   host/setup.sh             packages + kernels (6.1 and 6.12 series)
#   host/setup.sh --packages  system packages only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

packages=(
  pkg-config libdw-dev libelf-dev zlib1g-dev   # libdw/libelf for DWARF, zlib for PNG
  elfutils dwarves binutils                    # eu-readelf, pahole, nm (layout checks, benchmark)
  qemu-system-x86 busybox-static cpio zstd e2fsprogs sqlite3
  hyperfine time                               # time: exact peak RSS of a child (reader memory tests)
  nbdkit libnbd-dev                            # remote page source: server, client library
  gcc libc6-dev                                # builds the guest-side kpageflags recorder
  libzstd-dev liblz4-dev liblzma-dev           # vmlinuz payloads (zstd, lz4, xz) for layouts from BTF
  libssl-dev                                   # libcrypto's SHA-256 (image cache keys, workload digests)
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
"$here/fetch-kernels.sh" 6.1 6.12
