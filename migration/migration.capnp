# The live-migration protocol switch to switch: the capabilities the destination and the source
# hand each other once the source has called the destination's `incoming` (rpc/palisade.capnp).
# The interface ids are explicit and never change, so switches of different builds migrate to
# each other. Ordinals are never reused.
@0xa716abf6fec442a1;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("palisade::migration");
using PortDelta = import "/migration/port_state.capnp".PortDelta;

# The destination's side of one arriving port.
interface IncomingMigration @0xf9990b120a54b809 {
  # Applies a delta: removals, then changed entries (re-checked). The final one makes the port
  # ready: it opens as soon as its device starts here.
  delta @0 (delta :PortDelta) -> (taken :UInt32);
  # The migration failed or was cancelled: the destination discards the port and its state.
  abort @1 (reason :Text) -> ();
}

# The source's side, called back by the destination.
interface MigrationSource @0xb0351c34d5ac2aa8 {
  # The device started at the destination with the final delta in: the VM runs there now.
  completed @0 () -> ();
}
