#!/usr/bin/env bash
# Fetches Debian cloud kernels for guests without installing them on the host.
# For each series (6.1, 6.12) the exact version is resolved from Debian's meta package, then
# the -unsigned image (bzImage + modules) and the -dbg package (vmlinux with DWARF) are
# downloaded and unpacked into $KSCOPE_CACHE/kernels/<version>/ (default /var/cache/kscope).
# A version already unpacked is reused. Prints "<series> <version> <dir>" per series.
# An exact version (e.g. 6.1.0-56-cloud-amd64, as a snapshot manifest records it) is fetched
# as it is, without resolving a series.
set -euo pipefail
cache=${KSCOPE_CACHE:-/var/cache/kscope}/kernels
mkdir -p "$cache"

resolve() { # series -> exact version, e.g. 6.1.0-56-cloud-amd64
  local meta
  if [[ $1 == *-cloud-amd64 ]]; then echo "$1"; return 0; fi
  case $1 in
    6.1) meta=linux-image-cloud-amd64 ;;
    6.12) meta=linux-image-6.12-cloud-amd64 ;;
    *) echo "fetch-kernels: unknown series '$1' (expected 6.1 or 6.12)" >&2; return 2 ;;
  esac
  local dep
  dep=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [[ -z $dep ]]; then
    apt-get update -qq
    dep=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/{print $2; exit}')
  fi
  [[ -n $dep ]] || { echo "fetch-kernels: cannot resolve $meta" >&2; return 1; }
  echo "${dep#linux-image-}"
}

(($#)) || set -- 6.1 6.12
for series in "$@"; do
  version=$(resolve "$series")
  dir=$cache/$version
  if [[ ! -f $dir/.complete ]]; then
    echo "fetch-kernels: fetching $version" >&2
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/debs"; chmod 0777 "$dir.tmp" "$dir.tmp/debs" # apt drops to _apt
    (cd "$dir.tmp/debs" && apt-get download -qq "linux-image-$version-unsigned" "linux-image-$version-dbg")
    dpkg -x "$dir.tmp/debs"/linux-image-"$version"-unsigned_*.deb "$dir.tmp/root"
    # Only the vmlinux from the 283 MB debug package; its module debug info is not needed.
    dpkg-deb --fsys-tarfile "$dir.tmp/debs"/linux-image-"$version"-dbg_*.deb |
      tar -x -C "$dir.tmp/root" "./usr/lib/debug/boot/vmlinux-$version"
    mkdir -p "$dir.tmp/out"
    mv "$dir.tmp/root/boot/vmlinuz-$version" "$dir.tmp/out/vmlinuz"
    mv "$dir.tmp/root/usr/lib/debug/boot/vmlinux-$version" "$dir.tmp/out/vmlinux"
    cp "$dir.tmp/root/boot/config-$version" "$dir.tmp/out/config" 2>/dev/null || true
    cp "$dir.tmp/root/boot/System.map-$version" "$dir.tmp/out/System.map" 2>/dev/null || true
    mv "$dir.tmp/root/lib/modules/$version" "$dir.tmp/out/modules"
    echo "$version" > "$dir.tmp/out/version"
    rm -rf "$dir"; mv "$dir.tmp/out" "$dir"; rm -rf "$dir.tmp"
    touch "$dir/.complete"
  fi
  [[ $series == "$version" ]] || ln -sfn "$version" "$cache/$series"
  echo "$series $version $dir"
done
