# A port's whole filter state, as it travels to another switch in a live migration and to the
# next palisaded across a restart. Versioned: a reader refuses a version it cannot read.
# Ordinals are never reused.
@0xf77b5bab3eb96493;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("palisade::migration");

const currentVersion :UInt32 = 1;

struct TcpPeer {
  end @0 :UInt32;              # highest sequence number sent + 1
  maxEnd @1 :UInt32;           # highest sequence number the other side allowed
  maxWin @2 :UInt32;           # largest window seen; 0: this side not seen yet
  scale @3 :UInt8;
  flags @4 :UInt8;             # FIN sent, window scaling offered
}

struct Connection {
  lo @0 :Data;                 # 16 bytes (IPv4 as ::ffff:a.b.c.d): the normalized key's lower end
  hi @1 :Data;
  loPort @2 :UInt16;
  hiPort @3 :UInt16;
  proto @4 :UInt8;
  state @5 :UInt8;             # firewall ConnState
  flags @6 :UInt8;             # originator side, direction, logged, IPv6
  closeReason @7 :UInt8;
  ruleId @8 :UInt32;           # the rule that admitted it
  rulePosition @9 :UInt16;
  generation @10 :UInt16;      # of the source's table that admitted or last re-checked it
  flowId @11 :UInt64;
  origPackets @12 :UInt64;
  replyPackets @13 :UInt64;
  origBytes @14 :UInt64;
  replyBytes @15 :UInt64;
  expiresInSeconds @16 :UInt32;  # remaining, since clocks differ between switches
  peers @17 :List(TcpPeer);    # original side, reply side
}

struct Timeout {
  name @0 :Text;
  seconds @1 :UInt32;
}

struct Slot {
  slot @0 :UInt8;
  agent @1 :Text;              # sfw, swsec, counting, none
  failOpen @2 :Bool;
}

struct VmMembers {
  vm @0 :Text;
  addresses @1 :List(Text);
}

struct PortState {
  version @0 :UInt32;          # currentVersion of the writer
  name @1 :Text;
  vhostUser @2 :Text;          # socket path (empty for an uplink)
  client @3 :Bool;
  vm @4 :Text;
  mac @5 :Text;
  ips @6 :List(Text);
  slots @7 :List(Slot);
  rules @8 :Text;              # the rule tables and address sets, as getrules/getaddrsets print them
  generation @9 :UInt32;       # of the exported rule table
  connectionLimit @10 :UInt32;
  recheck @11 :Bool;
  timeouts @12 :List(Timeout);
  connections @13 :List(Connection);
  vmAddresses @14 :List(VmMembers);
    # the addresses of every VM the rules' dynamic address sets name, as the source knew them:
    # the destination resolves with them the VMs it does not host itself
  learnedMac @15 :Text;        # what port security learned on first use (empty: nothing)
  learnedIps @16 :List(Text);
  allow @17 :List(Text);       # router, dhcp-server, vlan: what the VM may do beyond a guest
  uplink @18 :Text;            # an uplink's device arguments (switch state only; never migrated)
  movedTo @19 :Text;
    # switch state only: the switch the port's guest was being handed to (its cut-over under
    # way) when the state was saved; restored closed until the guest starts here again
}

struct ConnectionKey {
  lo @0 :Data;
  hi @1 :Data;
  loPort @2 :UInt16;
  hiPort @3 :UInt16;
  proto @4 :UInt8;
}

# A live migration's delta: what changed in the port's connection table since the bulk copy or
# the previous delta. The destination removes `removed` first, then takes `changed`.
struct PortDelta {
  version @0 :UInt32;
  name @1 :Text;
  round @2 :UInt32;            # 1, 2, ... in the order sent; 0: a piece of the bulk copy
  final @3 :Bool;              # sent when the source's device stopped: the last one
  changed @4 :List(Connection);
  removed @5 :List(ConnectionKey);
}

struct SwitchState {
  version @0 :UInt32;
  savedAt @1 :Text;            # UTC, for people reading the file
  ports @2 :List(PortState);
  macAgeingSeconds @3 :UInt32; # 0: the default
}
