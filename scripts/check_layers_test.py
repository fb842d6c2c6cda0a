#!/usr/bin/env python3
"""The layer check fails on an include from a layer above, naming the file and line, and passes
a tree that keeps the layers."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layers.py")


def run(files):
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        p = subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True)
        return p.returncode, p.stderr


class CheckLayersTest(unittest.TestCase):
    def test_layered_tree_passes(self):
        rc, err = run({
            "slot/filter.h": "#pragma once\n",
            "firewall/packet.h": '#include "slot/filter.h"\n#include <vector>\n',
            "vswitch/switch.h": '#include "firewall/packet.h"\n',
            "rpc/a.capnp": 'using P = import "/migration/port_state.capnp".P;\n',
            "tests/x.cc": '#include "daemon/options.h"\n',
        })
        self.assertEqual(rc, 0, err)

    def test_include_from_above_names_file_and_line(self):
        rc, err = run({"firewall/packet.h": '#pragma once\n#include "vswitch/switch.h"\n'})
        self.assertEqual(rc, 1)
        self.assertIn("firewall/packet.h:2: firewall/ includes vswitch/switch.h", err)

    def test_schema_import_from_above(self):
        rc, err = run({"migration/m.capnp": '\n\nusing X = import "/rpc/palisade.capnp".X;\n'})
        self.assertEqual(rc, 1)
        self.assertIn("migration/m.capnp:3: migration/ includes rpc/palisade.capnp", err)

    def test_dpdk_in_a_library_without_dpdk(self):
        rc, err = run({"firewall/packet.cc": "#include <rte_mbuf.h>\n"})
        self.assertEqual(rc, 1)
        self.assertIn("firewall/packet.cc:1: firewall/ includes DPDK's rte_mbuf.h", err)

    def test_folder_without_a_layer(self):
        rc, err = run({"newpart/x.cc": "int x;\n"})
        self.assertEqual(rc, 1)
        self.assertIn("newpart/: a folder with code that has no layer", err)


if __name__ == "__main__":
    unittest.main()
