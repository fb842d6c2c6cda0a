#!/usr/bin/env bash
# Runs every test: unit tests, then integration tests that start real palisaded instances with
# real vhost-user peers (dpdk-testpmd), network namespaces and uplinks. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
# The release configuration (-O3, warnings are errors) as the Debian package is built, in
# build-release/; the package test installs that package.
scripts/build-deb.sh
meson test -C build --print-errorlogs "$@"
# The unit tests and the daemon once more under AddressSanitizer and UBSan (clang).
scripts/sanitize.sh
# The parsers meet untrusted bytes: a short fuzzing run of each target (clang, ASan).
scripts/fuzz.sh 20
