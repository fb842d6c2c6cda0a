// Switch: the control side of the datapath. It owns the ports, their IOChains, the bridge and
// the workers, and publishes every change to the workers as a new immutable Snapshot with one
// pointer swap (RCU), so no worker is ever paused.
//
// This is the API every control front end calls: the config file at start-up and the Cap'n
// Proto control plane (rpc/server.h).
//
// Thread-safety: every method on the control thread only. RemovePort blocks the control thread
// (never a worker) until every worker has passed a quiescent point, so the port is gone when it
// returns.
#pragma once

#include <rte_mempool.h>

#include <atomic>
#include <bitset>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "firewall/packet_log.h"
#include "firewall/port_security.h"
#include "firewall/rule.h"
#include "firewall/stateful_filter.h"
#include "vswitch/bridge.h"
#include "vswitch/capture.h"
#include "vswitch/counting_filter.h"
#include "vswitch/iochain.h"
#include "vswitch/port.h"
#include "vswitch/port_allow.h"
#include "vswitch/rcu.h"
#include "vswitch/snapshot.h"
#include "vswitch/worker.h"

namespace palisade {

struct PortSpec {
  std::string name;
  PortKind kind = PortKind::kVhostUser;
  std::string path;     // vhost-user socket
  bool client = false;  // vhost-user client mode
  std::string devargs;  // uplink
  // The VM behind the port and what it is bound to (port security; dynamic address sets).
  std::string vm;
  uint64_t mac = 0;
  std::vector<fw::IpAddr> ips;
  PortAllow allow;  // vhost-user only
  bool operator==(const PortSpec&) const = default;
};

// What a slot holds: a named filter agent, or nothing yet ("none"), so the failure policy
// decides. Agents: "swsec" (port security, slot 1), "sfw" (stateful firewall, slot 2),
// "counting".
struct FilterSpec {
  uint8_t slot = 0;
  std::string agent;
  FailurePolicy policy = FailurePolicy::kFailClosed;
};

struct SlotInfo {
  uint8_t slot;
  std::string name;   // nic-<port index>-<port>-<agent>.<slot>
  std::string agent;  // empty: nothing attached
  FailurePolicy policy;
  CountingFilter::Totals counts;  // for counting filters
};

struct PortInfo {
  std::string name;
  uint16_t index;
  PortSpec spec;
  bool link_up;
  uint16_t queue_pairs;
  uint16_t worker;
  PortTotals totals;
  std::vector<SlotInfo> slots;
  uint64_t cluster_revision;  // the etcd revision its rules come from; 0: configured here
};

// A port's whole filter state as values: what migration/ serialises to move it to another
// switch or across a restart.
struct PortExport {
  PortSpec spec;
  std::vector<FilterSpec> slots;
  std::string rules;  // the rule tables and address sets as text (empty: none loaded)
  uint32_t generation = 0;
  fw::FirewallOptions options;
  std::vector<fw::Conn> conns;  // expires_s: seconds left
  // The addresses of the VMs named by the rules' dynamic address sets (`vm NAME`), as known here.
  std::map<std::string, std::vector<fw::IpAddr>> vm_addresses;
  // What port security learned on first use (MAC: 0 when configured or not yet seen).
  uint64_t learned_mac = 0;
  std::vector<fw::IpAddr> learned_ips;
  // The configuration's record of a cut-over under way (Switch::SetMovedTo); never migrated.
  std::string moved_to;
};

// What a capture has delivered and lost so far; ended: it captures no more (its count was
// reached, its port was removed), what is left in its rings still comes.
struct CaptureTotals {
  uint64_t captured = 0;
  uint64_t lost = 0;
  bool ended = false;
};

struct MacInfo {
  uint64_t mac;
  std::string port;
  uint32_t age_s;
};

class Switch {
 public:
  struct Options {
    std::vector<unsigned> worker_lcores;  // one worker per EAL lcore id listed
    uint32_t mbufs = 32767;
    uint32_t mac_table_size = 8192;
    uint32_t mac_ageing_s = 300;
    std::FILE* packet_log = nullptr;  // where packet log lines go (null: counted only)
    fw::FirewallOptions firewall;     // defaults for new stateful filters
    // Where each stateful filter keeps its connections (fw::ConnSegment, port-NAME.conns), so
    // that they outlive the process; empty: private memory.
    std::string conn_dir;
    // Problems that do not stop what was asked (a connection segment that cannot be made).
    std::function<void(const std::string&)> warn;
  };

  static Status Create(Options options, std::unique_ptr<Switch>* out);
  ~Switch();  // stops the workers and removes every port

  Status Start();  // launches the workers

  Status AddPort(const PortSpec& spec);
  Status RemovePort(const std::string& name);
  Status AttachFilter(const std::string& port, const FilterSpec& spec);
  Status DetachFilter(const std::string& port, uint8_t slot);
  Status SetMacAgeing(uint32_t seconds);
  size_t FlushMacs() { return bridge_->Flush(); }
  uint64_t learn_events_lost() const { return bridge_->learn_events_lost(); }

  // Firewall (switch_firewall.cc). `filter` is a filter name (nic-...-palisade-sfw.2) or a port.
  Status LoadRules(const std::string& filter, std::string_view text);
  // LoadRules in three steps, so that the compile (seconds for tens of thousands of rules)
  // runs off the control thread while it goes on ticking (MAC learning, expiry, connection
  // slots backed ahead of the workers, cluster updates) and answering: PrepareRules (control
  // thread) parses, merges and resolves the file's VMs and groups; CompileRules (any thread)
  // compiles; CommitRules (control thread) installs the table, unless anything it depends on
  // changed since PrepareRules (another change, a VM's addresses): then it loads the text
  // again, as LoadRules does.
  struct PreparedRules {
    std::string filter, text;
    fw::RuleFile file;
    std::map<std::pair<fw::Member, std::string>, std::vector<fw::IpPrefix>> members;
    uint32_t generation = 0;
    uint64_t inputs = 0;  // RuleInputs() at PrepareRules
    uint64_t cluster_revision = 0;  // PrepareClusterRules' file: the port's whole file
    bool recompile = false;         // PrepareRecompile's: the port's own file, no text
    Status compiled;
    std::shared_ptr<const fw::RuleTable> table;
  };
  Status PrepareRules(const std::string& filter, std::string_view text, PreparedRules* out) const;
  static void CompileRules(PreparedRules* p);
  Status CommitRules(PreparedRules p);
  Status SetAddrSet(const std::string& filter, fw::AddrSet set);
  Status GetRules(const std::string& filter, std::string* text,
                  std::vector<fw::RuleStats>* stats, std::vector<fw::Rule>* rules) const;
  Status GetAddrSets(const std::string& filter, std::string* text) const;
  Status GetFlows(const std::string& filter, const fw::FlowSelector& sel,
                  std::vector<fw::FlowInfo>* out) const;
  // One page of flows from `cursor`; *next is fw::ConnTable::kNil after the last page.
  Status GetFlowsPage(const std::string& filter, const fw::FlowSelector& sel, uint32_t cursor,
                      uint32_t max, std::vector<fw::FlowInfo>* out, uint32_t* next) const;
  Status FlushFlows(const std::string& filter, const fw::FlowSelector& sel, size_t* flushed);
  // A stateful filter's options and what it holds now.
  struct FirewallStatus {
    fw::FirewallOptions options;
    uint32_t flows = 0;
    size_t table_bytes = 0;         // the connection table's
    uint32_t rules = 0;             // in the L3/L4 table
    std::string classifier;         // its engine: bitvector or rte_acl; empty without rules
    size_t classifier_bytes = 0;
  };
  Status GetFirewall(const std::string& filter, FirewallStatus* out) const;
  Status SetFirewallOptions(const std::string& filter, const fw::FirewallOptions& options);
  // Changes only what is given: the limit, the re-check option, named timeouts. All or nothing.
  Status UpdateFirewallOptions(const std::string& filter, std::optional<uint32_t> limit,
                               std::optional<bool> recheck,
                               const std::vector<std::pair<std::string, uint32_t>>& timeouts);
  // Export and import of a port's state (switch_export.cc). Import creates the port when it does
  // not exist, attaches its slots (the stateful filter without rules first: failClosed until the
  // rules are in), loads the rules, then the connections, re-checked against them.
  // A port still arriving by live migration is refused: its table is not complete yet.
  // without connections: the port's configuration alone (what the durable store keeps).
  Status ExportPort(const std::string& name, PortExport* out, bool with_connections = true) const;
  Status ImportPort(const PortExport& in, size_t* connections = nullptr);
  // Into a port that exists (restored from the durable configuration): only what was learned
  // and the connections, re-checked against the rules it has; its configuration stays.
  Status RestoreConnections(const PortExport& in, size_t* connections);

  // Live migration (switch_export.cc). A port arriving from another switch must not exist here;
  // it is imported closed (vswitch/migration_gate.h: everything dropped as "migrating") until
  // OpenPort, which removes the gate and announces the VM's MAC (a RARP, as QEMU sends,
  // through the bridge to every other port and uplink).
  Status ImportIncoming(const PortExport& in, size_t* connections);
  // A delta from the source: its removals, then its changed entries, re-checked here.
  Status ApplyDelta(const std::string& name, const std::vector<fw::Conn>& changed,
                    const std::vector<fw::ConnKey>& removed, size_t* taken);
  Status OpenPort(const std::string& name);
  // The source's end of a completed migration: the port goes, and its VM's addresses stay known
  // as a VM on another switch, so that other ports' rules naming it keep matching.
  Status RemoveMigratedPort(const std::string& name);
  // The source's cut-over: the port's guest is being handed to the switch `peer` (empty: it
  // stays here after all). Saved with the configuration: a switch restarted meanwhile brings
  // the port back closed (as an arriving one) until its guest starts here again
  // (ReclaimMovedPort), since the guest may have resumed here or run on at the peer.
  Status SetMovedTo(const std::string& name, const std::string& peer);
  // A device started on a port restored closed by SetMovedTo (or its peer does not have it):
  // the guest is here, the port opens; *peer: where it was going. NotFound for any other port.
  Status ReclaimMovedPort(const std::string& name, std::string* peer);
  // Ports restored closed by SetMovedTo, with their peers.
  std::vector<std::pair<std::string, std::string>> MovedPorts() const;
  // The port's stateful filter (thread-safe itself): the source tracks changes and takes its
  // deltas from it on the migration's own thread. Null when none is attached.
  Status StatefulFilterOf(const std::string& name, std::shared_ptr<fw::StatefulFilter>* out) const;
  std::vector<std::string> PortNames() const;

  // The addresses the switch knows for a VM: bound to its ports, or learned by port security;
  // for a VM without a port here, what the cluster publishes for it, else what a migrated port
  // brought along (PortExport::vm_addresses).
  std::vector<fw::IpAddr> VmAddresses(const std::string& vm) const;

  // The cluster (cluster/): a port whose VM the cluster's policies apply to takes its whole
  // rule file from there (rendered by the cluster agent), stamped with the etcd revision it
  // comes from; local LoadRules and SetAddrSet on it are refused, saying where the policy
  // lives. The cluster's view of every host's VMs and of its groups resolves `vm NAME` (for
  // VMs without a port here) and `group NAME` members; a change recompiles only the tables
  // whose sets name what changed: in place, or, given `stale`, by the caller, to which they are
  // listed (each through PrepareRecompile, CompileRules and CommitRules; until then the
  // port's table keeps the addresses it had).
  Status SetClusterRules(const std::string& port, std::string_view text, uint64_t revision);
  // The same in the three steps of PrepareRules, CompileRules and CommitRules (which falls back
  // to SetClusterRules when an input changed meanwhile).
  Status PrepareClusterRules(const std::string& port, std::string_view text, uint64_t revision,
                             PreparedRules* out) const;
  void SetClusterAddresses(std::map<std::string, std::vector<fw::IpAddr>> vms,
                           std::map<std::string, std::vector<fw::IpPrefix>> groups,
                           std::vector<std::string>* stale = nullptr);
  // The port's rule file as it is, resolved with today's addresses (CommitRules falls back to
  // compiling it in place when an input changed meanwhile).
  Status PrepareRecompile(const std::string& port, PreparedRules* out) const;
  const fw::PacketLog& packet_log() const { return *packet_log_; }

  // Periodic control work: MAC learning and ageing, connection expiry, the packet log, freeing
  // retired snapshots. Call ~50x/s: a MAC learned by a worker is applied here.
  void Tick();
  // Where the tick sends the tables to compile again when a port learns or forgets an address
  // (those whose sets name VMs): to `later`, a port at a time (a TableCompiler, so that many
  // large tables do not hold the control loop); unset, they compile in the tick.
  void set_recompile_later(std::function<void(const std::string& port)> later) {
    recompile_later_ = std::move(later);
  }

  std::vector<PortInfo> Ports() const;
  Status GetPort(const std::string& name, PortInfo* info) const;
  std::vector<WorkerStats> Workers() const;
  std::vector<MacInfo> Macs() const;

  // Packet capture at a point of a port's IOChain (switch_capture.cc, vswitch/capture.h). One
  // capture per port at a time. Start turns it on at once (the workers see it at their next
  // batch); Read hands over what was recorded (up to max), stopping the capture once its count
  // is delivered; Stop turns it off, waits for the workers to let go, and forgets it.
  // owner: who started it (a control connection), for StopCaptures.
  Status StartCapture(const CaptureSpec& spec, uint64_t owner, uint64_t* id);
  Status ReadCapture(uint64_t id, size_t max, std::vector<CaptureRecord>* out,
                     CaptureTotals* totals);
  Status StopCapture(uint64_t id, CaptureTotals* totals);
  // Stops every capture `owner` started: its connection closed.
  void StopCaptures(uint64_t owner);
  // Wall-clock time (ns since the epoch) of the switch's monotonic clock value now_ns.
  int64_t WallNs(uint64_t now_ns) const { return static_cast<int64_t>(now_ns) + wall_offset_ns_; }
  uint32_t mac_ageing_s() const { return bridge_->ageing_s(); }
  uint64_t generation() const { return generation_; }
  // Counts calls that may have changed the configuration (ports, slots, rules, address sets,
  // options): a store compares it with what it saved last.
  uint64_t config_changes() const { return config_changes_; }
  // The sum of the ports' PortSecurity::learned_version(): with config_changes(), whether
  // what port security learned may differ from what a store saved last.
  uint64_t learned_version() const;

 private:
  struct PortState {
    std::shared_ptr<Port> port;
    std::shared_ptr<const IOChain> chain;
    PortSpec spec;
    uint16_t worker;
    // The firewall's filters when attached, and the rule source the table compiles from.
    std::shared_ptr<fw::PortSecurity> swsec;
    std::shared_ptr<fw::StatefulFilter> sfw;
    fw::RuleFile rules;
    uint32_t generation = 0;
    uint64_t cluster_revision = 0;  // of the cluster policy the rules come from (0: local)
    bool conns_unbacked = false;    // the last CommitAhead failed (warned once)
    std::string moved_to;           // Switch::SetMovedTo
  };

  Status Import(const PortExport& in, bool incoming, size_t* connections);
  // Sends a RARP from the port's bound MAC into the bridge, as if the port had received it.
  Status Announce(const std::string& name);
  Status MakeFilter(PortState& state, const FilterSpec& spec, std::shared_ptr<Filter>* out);
  PortState* FindFirewall(const std::string& filter);
  const PortState* FindFirewall(const std::string& filter) const;
  Status Compile(PortState& state, fw::RuleFile file);
  // A compiled table in place: the port's rules, its generation (the table's), the filter's table.
  void Install(PortState& state, fw::RuleFile file, std::shared_ptr<const fw::RuleTable> table);
  // state's rules with a rule file's text on top (its tables and the sets it defines).
  Status MergeRules(const PortState& state, std::string_view text, fw::RuleFile* out) const;
  // Changes whenever what a table for `state` compiles from may have: the configuration, the
  // port's table and, for tables with VM or group members (dynamic), the addresses they stand for.
  // A cluster file or a recompile that replaced another port's table is not among them, so the
  // cluster's loads of many ports at once do not send each other back to a load in order.
  uint64_t RuleInputs(const PortState& state, bool dynamic) const {
    return config_changes_ - cluster_loads_ + state.generation +
           (dynamic ? learned_version() + cluster_changes_ : 0);
  }
  Status Managed(const PortState& state) const;  // refuses local rule changes to cluster ports
  // A prepared file's members resolved, its generation and inputs.
  void Resolve(const PortState& state, PreparedRules* out) const;
  std::vector<fw::IpPrefix> MemberAddresses(fw::Member kind, const std::string& name) const;
  fw::MemberAddresses Members() const;
  void RecompileVmSets(bool later = false);  // later: through recompile_later_, when set
  // Tells every port security which addresses the other ports hold (never to be learned).
  void ReserveAddresses();
  void FirewallTick(uint64_t now_ns);

  explicit Switch(Options options);
  void Publish();
  PortInfo Describe(const PortState& state) const;
  uint32_t NowS() const;

  struct CaptureState {
    std::unique_ptr<Capture> capture;
    uint16_t index;      // the port's
    uint64_t owner;
    uint64_t delivered = 0;
    bool active = true;  // captures_[index] points to it
  };
  void EndCapture(CaptureState& state);  // turns it off; returns after the grace period

  Options options_;
  int64_t wall_offset_ns_ = 0;
  std::map<uint64_t, CaptureState> capture_states_;
  uint64_t next_capture_id_ = 1;
  // Per port index: its active capture, read by the workers once per batch.
  std::array<std::atomic<Capture*>, kMaxPorts> captures_{};
  rte_mempool* pool_ = nullptr;
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<Bridge> bridge_;
  std::unique_ptr<Handoffs> handoffs_;  // before workers_: they hold it
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;

  std::map<std::string, PortState> ports_;
  std::map<std::string, std::vector<fw::IpAddr>> remote_vms_;  // VMs on other switches
  std::map<std::string, std::vector<fw::IpAddr>> cluster_vms_;     // every host's, from etcd
  std::function<void(const std::string&)> recompile_later_;
  std::map<std::string, std::vector<fw::IpPrefix>> cluster_groups_;  // resolved, from etcd
  std::string boot_id_;  // fw::BootId(), stamped into connection segments
  uint64_t hash_seed_;  // of every connection table here: a packet is hashed once (parsed.h)
  std::unique_ptr<fw::PacketLog> packet_log_;
  std::bitset<kMaxPorts> index_used_;  // freed only once no worker can see the old port
  std::atomic<const Snapshot*> snapshot_{nullptr};
  uint64_t generation_ = 0;
  uint64_t config_changes_ = 0;
  uint64_t cluster_changes_ = 0;  // cluster addresses received that changed something
  uint64_t cluster_loads_ = 0;    // of config_changes_: cluster files or recompiles of one port
};

}  // namespace palisade
