#!/usr/bin/env bash
# The test command: installs what the tests need (system packages, QEMU, the Debian guest
# kernels; idempotent, cached by version), then builds (warnings are errors in debug builds)
# and runs every test. Run as root on Debian 12: `host/test.sh` (extra args go to swift test).
# Ends with one plain line, "N passed, M failed", from swift test's own summary.
set -euo pipefail
cd "$(dirname "$0")/.."
host/setup.sh
swift build
log=$(mktemp /tmp/kscope-test.XXXXXX)
trap 'rm -f "$log"' EXIT
status=0
swift test "$@" 2>&1 | tee "$log" || status=$?
total=$(grep -aoE 'Test run with [0-9]+ tests' "$log" | tail -1 | grep -oE '[0-9]+' || true)
failed=$(grep -aE '^✘ Test .* failed after' "$log" | grep -vc 'Test run with' || true)
if [[ -n $total ]]; then
  echo "tests: $((total - failed)) passed, $failed failed"
else
  echo "tests: swift test printed no summary (exit $status)"
fi
exit "$status"
