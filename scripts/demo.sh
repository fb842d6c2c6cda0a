#!/usr/bin/env bash
# The demo: builds Palisade, starts palisaded with two guests, sends traffic across the switch
# and prints the operator's views of ports, filter slots, learned MACs and workers. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
exec /usr/bin/python3 scripts/demo.py
