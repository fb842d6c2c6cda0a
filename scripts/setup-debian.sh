#!/usr/bin/env bash
# Installs what Palisade builds and tests with on Debian 12 (as root; non-interactive and
# idempotent: apt runs only when a package is missing), then configures and builds into build/.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ meson ninja-build pkg-config python3
  libdpdk-dev dpdk dpdk-dev            # DPDK 22.11; dpdk-dev carries dpdk-testpmd
  libcapnp-dev capnproto libev-dev libtbb-dev libgtest-dev libbenchmark-dev
  iproute2 ethtool iputils-ping procps # namespace guests and their traffic
  clang libclang-rt-14-dev             # libFuzzer targets (scripts/fuzz.sh)
  qemu-system-x86 busybox-static       # QEMU test guests (tests/lib/guest_image.py)
  openssl                              # test certificates for the TLS control plane
  python3-scapy                        # hand-built hostile frames (tests/integration/test_adversarial.py)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
ninja -C build
