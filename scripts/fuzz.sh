#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer) into build-fuzz/ and runs each for
# SECONDS (default 60), starting from the checked-in seeds: the packet parser, the rule parser,
# packet sequences through the stateful firewall and frames through port security (each of the
# last two against a reference decision of what may pass), and the import path (a peer's
# PortState and PortDelta, state files) against the policy the importing filter holds, and the
# rte_acl classifier engine against bit vectors on the tables the input builds. A crash leaves its input in
# build-fuzz/crash-* and fails the run. clang comes from scripts/setup-debian.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[ -f build-fuzz/build.ninja ] || CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_lundef=false -Dwerror=true
targets=(firewall/fuzz_packet firewall/fuzz_rules firewall/fuzz_stateful firewall/fuzz_port_security
         migration/fuzz_import vswitch/fuzz_classifier)
ninja -C build-fuzz "${targets[@]}"
for path in "${targets[@]}"; do
  target=${path#*/fuzz_}
  corpus=build-fuzz/corpus-$target
  mkdir -p "$corpus"
  seeds=$(dirname "$path")/fuzz_seeds/$target
  echo "fuzz: $target for ${seconds}s"
  log=build-fuzz/fuzz-$target.log
  rc=0
  build-fuzz/$path -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/ "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) >"$log" 2>&1 || rc=$?
  grep -E "^(Done|==.*ERROR|SUMMARY)" "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $target failed (exit $rc); see $log" >&2
    exit 1
  fi
done
