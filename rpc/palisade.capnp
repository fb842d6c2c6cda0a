# The control plane of palisaded: everything an operator (palisadectl) or an orchestrator does.
# Errors come back as exceptions whose description says what was wrong (unknown port, rule text
# error with line and column, ...); nothing is half-applied. Ordinals are never reused.
@0xc633be3b6a62a399;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("palisade::rpc");
using PortState = import "/migration/port_state.capnp".PortState;
using IncomingMigration = import "/migration/migration.capnp".IncomingMigration;
using MigrationSource = import "/migration/migration.capnp".MigrationSource;

struct PortSpec {
  name @0 :Text;
  union {
    vhostUser @1 :Text;        # socket path
    uplink @2 :Text;           # DPDK devargs
  }
  client @3 :Bool;             # vhost-user client mode: the guest's QEMU owns the socket
  vm @4 :Text;                 # the VM behind the port (dynamic address sets)
  mac @5 :Text;                # bound MAC, aa:bb:cc:dd:ee:ff (port security)
  ips @6 :List(Text);          # bound addresses (port security, dynamic address sets)
  allow @7 :List(Text);        # what the VM may do beyond a guest: router, dhcp-server, vlan
}

struct DropCount {
  reason @0 :Text;             # fail-closed, rule, reject, SpoofGuard, tx-full, ...
  packets @1 :UInt64;
}

struct PortInfo {
  spec @0 :PortSpec;
  index @1 :UInt16;
  link @2 :Bool;               # a guest is connected / the uplink is up
  queuePairs @3 :UInt16;
  worker @4 :UInt16;           # the datapath worker that polls it
  rxPackets @5 :UInt64;
  rxBytes @6 :UInt64;
  txPackets @7 :UInt64;
  txBytes @8 :UInt64;
  consumed @9 :UInt64;
  drops @10 :List(DropCount);  # every reason, zero or not
}

struct FilterSlot {
  slot @0 :UInt8;
  name @1 :Text;               # nic-<index>-<port>-<agent>.<slot>: what -f takes
  agent @2 :Text;              # palisade-swsec, palisade-sfw, palisade-count, or empty
  failOpen @3 :Bool;           # the failure policy: failOpen, else failClosed
}

struct PortFilters {
  port @0 :Text;
  index @1 :UInt16;
  vm @2 :Text;
  slots @3 :List(FilterSlot);
  clusterRevision @4 :UInt64;  # its rules come from the cluster's policies at this etcd revision
                               # (0: configured on this switch)
}

struct RuleStats {
  ruleId @0 :UInt32;
  position @1 :UInt32;
  evals @2 :UInt64;            # first packets classified to the rule
  inPackets @3 :UInt64;        # toward the VM
  outPackets @4 :UInt64;
  inBytes @5 :UInt64;
  outBytes @6 :UInt64;
}

struct FlowSelector {
  src @0 :Text;                # ADDR[/LEN]; empty: any
  dst @1 :Text;
  proto @2 :Int16 = -1;        # IP protocol; -1: any
  srcPort @3 :Int32 = -1;
  dstPort @4 :Int32 = -1;
}

struct Flow {
  flowId @0 :UInt64;
  state @1 :Text;              # SYN_SENT, EST, FIN_WAIT, TIME_WAIT, NEW, MULTIPLE, ...
  proto @2 :UInt8;
  v6 @3 :Bool;
  towardVm @4 :Bool;           # the original direction: true when it was opened toward the VM
  ruleId @5 :UInt32;
  src @6 :Text;                # the originator
  srcPort @7 :UInt16;
  dst @8 :Text;
  dstPort @9 :UInt16;
  origPackets @10 :UInt64;
  replyPackets @11 :UInt64;
  origBytes @12 :UInt64;
  replyBytes @13 :UInt64;
  expiresInSeconds @14 :UInt32;
}

struct Timeout {
  name @0 :Text;               # tcp_established, udp_first, ...
  seconds @1 :UInt32;
}

struct FirewallOptions {
  connectionLimit @0 :UInt32;
  recheck @1 :Bool;            # re-check connections against new rule tables
  timeouts @2 :List(Timeout);
  flows @3 :UInt32;            # entries in the table now
  tableBytes @4 :UInt64;
  rules @5 :UInt32;            # L3/L4 rules in its table
  classifier @6 :Text;         # the table's engine: bitvector or rte_acl (empty: no rules yet)
  classifierBytes @7 :UInt64;
}

struct WorkerStats {
  worker @0 :UInt16;
  busyCycles @1 :UInt64;       # cycles of polls that moved packets
  idleCycles @2 :UInt64;
  rxPackets @3 :UInt64;
  txPackets @4 :UInt64;
  loops @5 :UInt64;
  handoffPackets @6 :UInt64;   # packets other workers handed over for this worker's ports
  controlCycles @7 :UInt64;    # control calls the worker ran between its polls
}

struct MacEntry {
  mac @0 :Text;
  port @1 :Text;
  ageSeconds @2 :UInt32;
}

struct Connection {
  kind @0 :Text;               # what the client said it is (hello): cli, manager, switch; or unknown
  peer @1 :Text;               # unix socket peer (pid) or TCP address
  since @2 :Text;              # when it connected, UTC
  name @3 :Text;               # what the client said its name is
}

# A live migration as one of its two switches sees it.
struct Migration {
  port @0 :Text;
  direction @1 :Text;          # out (the VM leaves this switch) or in (it arrives here)
  peer @2 :Text;               # the other switch: its socket path or HOST:PORT; "source" for in
  phase @3 :Text;
    # out: copying, copied (bulk copy in; waiting for the device to stop), cut-over (final
    #      delta applied there; waiting for the device to start there), completed, cancelled,
    #      failed, resumed (the guest started again here: the destination discarded its copy)
    # in:  incoming (closed; waiting for the final delta), ready (final delta in; waiting for
    #      the device), running (device started, port open), discarded
  started @4 :Text;            # UTC
  connections @5 :UInt32;      # entries in the bulk copy (taken, for in)
  deltaChanged @6 :UInt32;     # entries in the final delta
  deltaRemoved @7 :UInt32;
  pauseMicros @8 :UInt64;      # the final delta's added pause: device stopped to delta applied
  bulkMillis @9 :UInt64;       # export, transfer and import of the bulk copy
  error @10 :Text;             # why it failed, was cancelled or discarded
  rounds @11 :UInt32;          # deltas sent while the VM ran (every 200 ms, when anything changed)
  roundEntries @12 :UInt32;    # entries they carried
}

struct ClusterStatus {
  enabled @0 :Bool;            # started with --etcd
  connected @1 :Bool;          # watching etcd now
  revision @2 :Int64;          # the cluster revision its view has
  lastContactMillis @3 :Int64; # since etcd last answered (-1: never): how stale the view may be
  error @4 :Text;              # the last failure, while not connected
  relists @5 :UInt64;
  reconnects @6 :UInt64;
  updates @7 :UInt64;          # views handed to the switch
  lease @8 :Int64;             # this host's lease
  published @9 :UInt32;        # VMs this host publishes
  host @10 :Text;
  endpoints @11 :Text;
  snapshotPath @12 :Text;      # --cluster-snapshot
  snapshotRevision @13 :Int64; # the revision the snapshot on disk holds (0: none yet)
  snapshotError @14 :Text;     # why the last write failed (the file on disk stays whole)
}

# One packet a capture recorded (palisadectl capture).
struct CapturedPacket {
  timeNanos @0 :Int64;         # wall clock, ns since the epoch (the worker's clock, converted)
  length @1 :UInt32;           # the packet's length; data holds at most snaplen bytes of it
  dir @2 :Text;                # in (toward the VM) or out (from the VM)
  verdict @3 :Text;            # what the port's chain did with it: pass, drop, consumed
  reason @4 :Text;             # for drop: fail-closed, rule, SpoofGuard, ...; else empty
  data @5 :Data;
}

interface Palisade {
  # Ports.
  addPort @0 (spec :PortSpec) -> ();
  removePort @1 (name :Text) -> ();
  listPorts @2 (name :Text) -> (ports :List(PortInfo));   # name empty: all

  # Filter slots.
  attachFilter @3 (port :Text, slot :UInt8, agent :Text, failOpen :Bool) -> ();
  detachFilter @4 (port :Text, slot :UInt8) -> ();
  summarizeFilters @5 () -> (ports :List(PortFilters));

  # Rule tables and address sets of a stateful filter (by filter name or port name).
  getRules @6 (filter :Text) -> (text :Text, stats :List(RuleStats));
  setRules @7 (filter :Text, text :Text) -> ();           # whole tables, atomically
  getAddrSets @8 (filter :Text) -> (text :Text);
  setAddrSet @9 (filter :Text, name :Text, addresses :List(Text)) -> ();

  # Connections, in pages: call again with nextCursor until done.
  getFlows @10 (filter :Text, selector :FlowSelector, cursor :UInt32, pageSize :UInt32)
      -> (flows :List(Flow), nextCursor :UInt32, done :Bool);
  countFlows @11 (filter :Text, selector :FlowSelector) -> (count :UInt32);
  flushFlows @12 (filter :Text, selector :FlowSelector) -> (flushed :UInt32);

  # Timeouts and limits.
  getFirewall @13 (filter :Text) -> (options :FirewallOptions);
  setFirewall @14 (filter :Text, connectionLimit :UInt32, recheck :Int8, timeouts :List(Timeout)) -> ();
      # connectionLimit 0 and recheck -1 leave those unchanged

  # Workers and the bridge.
  workerStats @15 () -> (workers :List(WorkerStats));
  macTable @16 () -> (macs :List(MacEntry), ageingSeconds :UInt32);

  # Who is connected to this switch's control plane.
  connections @17 () -> (connections :List(Connection));

  # Runs one line of the config-file language (vswitch/command.h), as a config file would;
  # the reply is JSON, {"ok":true,...} or {"ok":false,"error":"..."}. For scripts and tests.
  execute @18 (line :Text) -> (reply :Text);

  # The packet log's last lines (at most 1,000 are kept), oldest first, and its counters.
  tailLog @19 (lines :UInt32) -> (lines :List(Text), written :UInt64, suppressed :UInt64, lost :UInt64);

  # Migration: a port's whole filter state out of this switch, and into another one. Import
  # creates the port when missing (at `socket`, when given, instead of the exported path),
  # attaches its slots, loads its rules, then its connections, re-checked against them.
  exportPort @20 (name :Text) -> (state :PortState);
  importPort @21 (state :PortState, socket :Text) -> (connections :UInt32);

  # Live migration of a port to the switch at `to` (a unix socket path, or HOST:PORT reached
  # with TLS and this switch's --tls-cert/--tls-key/--tls-ca). Returns once the bulk copy is in
  # at the destination, which holds the port closed at `socket` (its vhost-user path there;
  # empty: the same path). The cut-over follows QEMU's migration by itself: the final delta when
  # the device stops here, the port opens and announces when its device starts there, then the
  # port is removed here. If the guest starts again here the destination discards its copy.
  migrate @22 (port :Text, to :Text, socket :Text) -> (migration :Migration);
  # Migrations in progress and recent ones, on this switch (both directions).
  migrations @23 () -> (migrations :List(Migration));
  # Cancels the migration of `port` (either side): the destination discards its copy; the
  # source port was never changed. Refused when none is in progress (a completed one included).
  cancelMigration @24 (port :Text) -> ();
  # Switch to switch (from a source's migrate): creates the port closed, with the bulk copy.
  incoming @25 (state :PortState, socket :Text, source :MigrationSource)
      -> (session :IncomingMigration, connections :UInt32);

  # Says who the caller is, for the connection list: kind cli, manager or switch, and a name.
  hello @26 (kind :Text, name :Text) -> ();

  # This switch's connection to the cluster's store (palisaded --etcd).
  clusterStatus @27 () -> (status :ClusterStatus);

  # Switch to switch, from a source restarted in the middle of a cut-over (its port restored
  # closed): where the guest of `port` is. phase: running (the port is open here: the guest
  # runs here), incoming or ready (still arriving), absent (no such port here).
  handover @28 (port :Text) -> (phase :Text);
  # Switch to switch: the guest of `port` started again at the caller, the source: the copy
  # arriving here from the caller is discarded (a port already running here is kept).
  reclaim @29 (port :Text) -> ();

  # Packet capture at a point of a port's IOChain: point pre (as packets enter the chain; every
  # packet, with the chain's verdict), post (what passed the whole chain) or post:N (what passed
  # every slot up to N); dir in, out or both; snaplen 1-2048 bytes per packet; count 0: until
  # stopped. One capture per port at a time. The caller reads until `ended` (count delivered,
  # or port removed) or stops it; a capture still on when its connection closes is stopped.
  # Packets the workers could not hand over in time (ring full) are counted in `lost`.
  startCapture @30 (port :Text, point :Text, dir :Text, snaplen :UInt32, count :UInt64)
      -> (id :UInt64);
  readCapture @31 (id :UInt64, max :UInt32)
      -> (packets :List(CapturedPacket), captured :UInt64, lost :UInt64, ended :Bool);
  stopCapture @32 (id :UInt64) -> (captured :UInt64, lost :UInt64);
}
