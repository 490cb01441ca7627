#!/usr/bin/env bash
# The test command: installs what the tests need (system packages, QEMU, the Debian guest
# kernels; idempotent, cached by version), then builds (warnings are errors in debug builds)
# and runs every test. Run as root on Debian 12: `host/test.sh` (extra args go to swift test).
set -euo pipefail
cd "$(dirname "$0")/.."
host/setup.sh
swift build
swift test "$@"
