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
  iptables                             # counts the guests' own SYNs (tests/integration/test_workers.py)
  clang libclang-rt-14-dev             # libFuzzer targets (scripts/fuzz.sh)
  qemu-system-x86 busybox-static       # QEMU test guests (tests/lib/guest_image.py)
  openssl                              # test certificates for the TLS control plane
  python3-scapy                        # hand-built hostile frames (tests/integration/test_adversarial.py)
  jq                                   # reads palisadectl --json in tests/integration/test_cli.py
  etcd-server etcd-client              # the cluster's store (cluster/), and its tests
  libgrpc++-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev  # etcd's gRPC API
  prometheus python3-prometheus-client # scrapes palisaded's /metrics (tests/integration/test_metrics.py)
  dpkg-dev systemd                     # the Debian package (scripts/build-deb.sh) and its unit's check
  libvirt-daemon-system libvirt-clients # libvirtd and virsh with the hook (tests/integration/test_libvirt.py)
  tshark                               # reads palisadectl capture's pcapng (tests/integration/test_capture.py)
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
  # tshark's wireshark-common asks whether non-root users may capture: no (we only read files).
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# etcd's .proto files come in Debian's Go source packages; only the files are taken (no Go
# toolchain), into .cache/etcd-proto laid out as protoc's include root (etcd/, gogoproto/,
# google/api/).
proto=.cache/etcd-proto
if [ ! -f "$proto/etcd/etcdserver/etcdserverpb/rpc.proto" ]; then
  tmp=$(mktemp -d)
  debs=(golang-etcd-server-dev golang-github-gogo-protobuf-dev golang-github-grpc-ecosystem-grpc-gateway-dev)
  (cd "$tmp" && { apt-get download "${debs[@]}" 2>/dev/null || { apt-get update -q && apt-get download "${debs[@]}"; }; })
  for d in "$tmp"/*.deb; do dpkg -x "$d" "$tmp/x"; done
  src=$tmp/x/usr/share/gocode/src
  mkdir -p "$proto"/etcd/etcdserver/etcdserverpb "$proto"/etcd/mvcc/mvccpb "$proto"/etcd/auth/authpb \
    "$proto"/gogoproto "$proto"/google/api
  cp "$src"/go.etcd.io/etcd/etcdserver/etcdserverpb/rpc.proto "$proto"/etcd/etcdserver/etcdserverpb/
  cp "$src"/go.etcd.io/etcd/mvcc/mvccpb/kv.proto "$proto"/etcd/mvcc/mvccpb/
  cp "$src"/go.etcd.io/etcd/auth/authpb/auth.proto "$proto"/etcd/auth/authpb/
  cp "$src"/github.com/gogo/protobuf/gogoproto/gogo.proto "$proto"/gogoproto/
  cp "$src"/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis/google/api/{annotations,http}.proto \
    "$proto"/google/api/
  rm -rf "$tmp"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build -Dwerror=true
fi
ninja -C build
