#!/bin/sh
# Installs the kscope guest agent into a parent VM image (run inside the guest, or with
# ROOT=/mnt/image against a mounted image): the binary, its systemd unit, a defaults file.
#
#   install.sh [PATH-TO-kscope-agent]
#
# The binary is the static-stdlib release build:
#   swift build -c release --product kscope-agent --static-swift-stdlib
# (it needs only glibc, libstdc++, libm and libgcc_s from the guest). Idempotent: running it
# again replaces the binary and unit and keeps an edited /etc/default/kscope-agent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${ROOT:-}
binary=${1:-$here/../../.build/release/kscope-agent}

if [ ! -x "$binary" ]; then
  echo "install.sh: no agent binary at $binary (build it: swift build -c release --product kscope-agent --static-swift-stdlib)" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root" >&2
  exit 1
fi

install -d "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/default"
# Stripped: the symbol table is 5 MB of the 14 MB binary.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if command -v strip > /dev/null 2>&1; then strip -o "$tmp" "$binary"; else cp "$binary" "$tmp"; fi
install -m 0755 "$tmp" "$root/usr/local/bin/kscope-agent"
install -m 0644 "$here/kscope-agent.service" "$root/etc/systemd/system/kscope-agent.service"
if [ ! -e "$root/etc/default/kscope-agent" ]; then
  cat > "$root/etc/default/kscope-agent" <<'DEFAULTS'
# Options for kscope-agent (see kscope-agent --help). Examples:
#   KSCOPE_AGENT_OPTIONS="--interval 1s --root / --root /srv"
#   KSCOPE_AGENT_OPTIONS="--cpu-budget 2%"
KSCOPE_AGENT_OPTIONS=""
DEFAULTS
fi

if [ -z "$root" ] && command -v systemctl > /dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable kscope-agent.service
  systemctl restart kscope-agent.service
  echo "install.sh: kscope-agent installed, enabled and started"
else
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf ../kscope-agent.service "$root/etc/systemd/system/multi-user.target.wants/kscope-agent.service"
  echo "install.sh: kscope-agent installed and enabled in ${root:-/} (starts at next boot)"
fi
