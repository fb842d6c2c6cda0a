#!/usr/bin/env bash
# The unit tests, and palisaded in the crash test, under AddressSanitizer and UBSan: built with
# clang into build-fuzz/ (the fuzz targets' configuration, scripts/fuzz.sh), where any
# out-of-bounds access, use after free or undefined behaviour stops the test that hit it.
# (The layer checks and the cluster view's unit test run in build/ only: the first are not
# C++, the second links gRPC, whose generated code would double this build.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build-fuzz/build.ninja ] || CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_lundef=false -Dwerror=true
units=(owner fw_packet fw_rule_text fw_rule_table fw_classifier fw_conn fw_conn_segment fw_stateful_filter fw_port_security fw_adversarial
       iochain bridge command acl_classifier table_compiler migration_port_state rpc_server prometheus_text rpc_metrics)
targets=(slot/owner_test firewall/fw_packet_test firewall/fw_rule_text_test firewall/fw_rule_table_test firewall/fw_classifier_test
         firewall/fw_conn_test firewall/fw_conn_segment_test
         firewall/fw_stateful_filter_test firewall/fw_port_security_test firewall/fw_adversarial_test
         vswitch/iochain_test vswitch/bridge_test vswitch/command_test vswitch/acl_classifier_test vswitch/table_compiler_test
         migration/port_state_test
         rpc/rpc_server_test common/prometheus_text_test rpc/rpc_metrics_test daemon/palisaded
         cli/palisadectl)
ninja -C build-fuzz "${targets[@]}"
meson test -C build-fuzz --no-rebuild --suite unit --print-errorlogs "${units[@]}"
# The daemon: SIGKILL under 10,000 connections, restarts, files set aside. Leaks at exit are
# DPDK's and the kill's, not findings.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  PALISADE_BUILD="$PWD/build-fuzz" /usr/bin/python3 tests/integration/test_crash.py
