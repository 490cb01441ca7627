#!/usr/bin/env bash
# Fetches Debian cloud kernels for guests without installing them on the host, into
# $KSCOPE_CACHE/kernels/<release>/ (default /var/cache/kscope): vmlinuz, vmlinux (DWARF, from the
# -dbg package), modules/, config, System.map. A release already unpacked is reused.
#
#   host/fetch-kernels.sh [6.1] [6.12]        the releases pinned in host/kernels.lock (default:
#                                             both); links kernels/<series> to them
#   host/fetch-kernels.sh RELEASE             an exact release, e.g. 6.1.0-57-cloud-amd64 (what a
#                                             snapshot manifest records); checked against the
#                                             lock when it pins that release (an "extra" line)
#   host/fetch-kernels.sh --latest 6.1 ...    Debian's newest release of a series, resolved from
#                                             its meta package; links kernels/<series>-latest
#
# Pinned releases are fetched at their locked Debian version and both .debs are checked against
# the locked SHA-256. Prints "<name> <release> <dir>" per request.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lock=${KSCOPE_KERNEL_LOCK:-$here/kernels.lock}
cache=${KSCOPE_CACHE:-/var/cache/kscope}/kernels
mkdir -p "$cache"

die() { echo "fetch-kernels: $*" >&2; exit 1; }

# lock_field SERIES-or-RELEASE COLUMN -> the lock's value (columns: series release debver sha-u sha-d)
lock_line() { awk -v k="$1" '!/^#/ && NF == 5 && ($1 == k || $2 == k) {print; exit}' "$lock"; }

latest() { # series -> Debian's newest release, from the meta package
  local meta dep
  case $1 in
    6.1) meta=linux-image-cloud-amd64 ;;
    6.12) meta=linux-image-6.12-cloud-amd64 ;;
    *) die "unknown series '$1' (expected 6.1 or 6.12)" ;;
  esac
  dep=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [[ -z $dep ]]; then
    apt-get update -qq
    dep=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/{print $2; exit}')
  fi
  [[ -n $dep ]] || die "cannot resolve $meta"
  echo "${dep#linux-image-}"
}

# download DIR PACKAGE[=VERSION]: apt-get download, with one index refresh if apt does not know it.
download() {
  local dir=$1 spec=$2
  if ! (cd "$dir" && apt-get download -qq "$spec" 2>/dev/null); then
    apt-get update -qq
    (cd "$dir" && apt-get download -qq "$spec") ||
      die "$spec is not in Debian's archive any more; move the pin with host/update-kernels.sh"
  fi
}

fetch() { # release [debian-version sha-unsigned sha-dbg] -> unpacked into $cache/<release>
  local version=$1 debver=${2:-} sha_u=${3:-} sha_d=${4:-}
  local dir=$cache/$version
  [[ -f $dir/.complete ]] && return 0
  [[ $version =~ ^[0-9][0-9.]*[-+][A-Za-z0-9.+-]*cloud-amd64$ ]] || die "'$version' is not a Debian cloud kernel release"
  echo "fetch-kernels: fetching $version${debver:+ ($debver, pinned)}" >&2
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/debs"; chmod 0777 "$dir.tmp" "$dir.tmp/debs" # apt drops to _apt
  local u="linux-image-$version-unsigned" d="linux-image-$version-dbg"
  download "$dir.tmp/debs" "$u${debver:+=$debver}"
  download "$dir.tmp/debs" "$d${debver:+=$debver}"
  if [[ -n $sha_u ]]; then
    echo "$sha_u  $(ls "$dir.tmp/debs"/"$u"_*.deb)" | sha256sum -c --quiet - ||
      die "$u does not match the SHA-256 in $lock"
    echo "$sha_d  $(ls "$dir.tmp/debs"/"$d"_*.deb)" | sha256sum -c --quiet - ||
      die "$d does not match the SHA-256 in $lock"
  fi
  dpkg -x "$dir.tmp/debs/$u"_*.deb "$dir.tmp/root"
  # Only the vmlinux from the ~300 MB debug package; its module debug info is not needed.
  dpkg-deb --fsys-tarfile "$dir.tmp/debs/$d"_*.deb |
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
}

mode=pinned
if [[ ${1:-} == --latest ]]; then mode=latest; shift; fi
(($#)) || set -- 6.1 6.12
for name in "$@"; do
  case $mode:$name in
    latest:*)
      version=$(latest "$name"); fetch "$version"
      ln -sfn "$version" "$cache/$name-latest"; echo "$name-latest $version $cache/$version" ;;
    pinned:6.1 | pinned:6.12)
      line=$(lock_line "$name"); [[ -n $line ]] || die "no pin for $name in $lock"
      read -r _ version debver sha_u sha_d <<<"$line"
      fetch "$version" "$debver" "$sha_u" "$sha_d"
      ln -sfn "$version" "$cache/$name"; echo "$name $version $cache/$version" ;;
    pinned:extra) die "'extra' is not a series: name the release" ;;
    pinned:*)
      line=$(lock_line "$name")
      if [[ -n $line ]]; then read -r _ version debver sha_u sha_d <<<"$line"; fetch "$version" "$debver" "$sha_u" "$sha_d"
      else fetch "$name"; fi
      echo "$name $name $cache/$name" ;;
  esac
done
