// StatefulFilter: the per-port stateful firewall (IOChain slot 2, agent palisade-sfw).
//
// For each packet: parse with every length checked (malformed: drop); the L2 rules first;
// then, for IP, a tracked connection decides (TCP sequence windows included) before the rules.
// An ICMP error passes as related only when it quotes a live, admitted connection, goes back to
// the quoted packet's sender (outer destination = quoted source) and travels opposite to the
// quoted packet through this port. Only ICMP echo makes connections: other ICMP types are
// judged by the rules every time. A later fragment passes only if its datagram's first fragment
// was admitted and it does not overlap that fragment's upper-layer header. Otherwise the first
// matching L3/L4 rule decides: accept creates an entry (unless `stateless`; `strict` TCP must
// open with a SYN), drop drops, reject drops and sends a RST or ICMP error back. A SYN on a live
// connection's ports is judged as a new connection; if its SYN/ACK comes back the entry is
// replaced (a peer that lost the connection reconnects from the same port). No table loaded:
// every packet is undecided, so the slot's failure policy applies. A full table drops new
// connections (state-limit).
//
// When the rule table changes, connections admitted under an older generation are re-checked
// against the new rules at their next packet and closed if no longer admitted (the secure
// default; `recheck` off keeps them).
//
// Export, import and migration deltas live in stateful_filter_export.cc.
//
// Thread-safety: the switch runs Process() on one worker only, the one that polls the port (IN
// included: other workers hand their bursts for the port over to it), so no two workers share
// a table, and the datapath takes no lock. The control methods (any thread) run their work on
// that worker between its bursts through the filter's owner (slot/owner.h), in short slices (a
// page of flows, a slice of an import), so the worker is delayed by microseconds at most and
// never stopped; what allocates (result vectors, new tables, pages) is done on the caller.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "firewall/conn_table.h"
#include "firewall/packet_log.h"
#include "firewall/rule_table.h"
#include "firewall/timeouts.h"
#include "slot/filter.h"

namespace palisade::fw {

struct Keyed;  // parsed.h

struct FirewallOptions {
  uint32_t conn_limit = 100000;
  bool recheck = true;
  Timeouts timeouts;
};

// Selects flows for getflows and flush; unset fields match everything.
struct FlowSelector {
  bool has_src = false, has_dst = false;
  IpPrefix src{}, dst{};
  int proto = kAny;
  int sport = kAny, dport = kAny;
  bool Matches(const Tuple& orig) const;
};

struct FlowInfo {
  uint64_t flow_id;
  ConnState state;
  bool v6;
  bool orig_in;  // opened toward the VM
  uint32_t rule_id;
  Tuple orig;
  uint64_t pkts[2], bytes[2];
  uint32_t expires_in_s;
};

struct RuleStats {
  uint64_t evals = 0;
  uint64_t pkts[2] = {0, 0};  // [0] in, [1] out
  uint64_t bytes[2] = {0, 0};
};

class StatefulFilter : public Filter {
 public:
  // seed: flow ids and, unless hash_seed is given, the connection table's hash. Filters of one
  // switch share a hash_seed so that a packet's key is hashed once for both ports' tables.
  // segment: where the connection entries live (ConnSegment::Create: they outlive the
  // process); null: private memory.
  StatefulFilter(uint32_t filter_id, PacketLog* log, FirewallOptions options, uint64_t seed,
                 std::optional<uint64_t> hash_seed = std::nullopt,
                 std::unique_ptr<ConnSegment> segment = nullptr);

  std::string_view agent() const override { return "palisade-sfw"; }
  void Process(FilterBatch& batch) override;

  // Control side.
  void SetTable(std::shared_ptr<const RuleTable> table);
  std::shared_ptr<const RuleTable> table() const;
  FirewallOptions options() const;
  // Fails (changing nothing) when a higher connection limit finds no memory.
  Status SetOptions(const FirewallOptions& options);
  std::vector<RuleStats> rule_stats() const;

  // Walks flows in pages: returns the cursor to continue from, ConnTable::kNil when done.
  uint32_t Flows(uint32_t cursor, uint32_t max, const FlowSelector& sel, uint64_t now_ns,
                 std::vector<FlowInfo>* out);
  // Removes matching flows (a TERM line for logged ones); returns how many.
  size_t Flush(const FlowSelector& sel, uint64_t now_ns);
  // Export and import of connection entries (migration, restart). Export copies up to `max`
  // live entries from `cursor` with expires_s turned into the seconds they have left; returns
  // the cursor to continue from (ConnTable::kNil when done). Import takes such entries from an
  // untrusted source: it refuses malformed ones (a key not in normal form, a state foreign to
  // the protocol, a window scale over 14, unknown flags), clamps the time left to this filter's
  // timeout, re-checks each against the current rule table whatever the re-check option (the
  // destination's tables win; no table admits nothing) and inserts the admitted ones,
  // replacing an entry with the same key; returns how many it took.
  uint32_t ExportConns(uint32_t cursor, uint32_t max, uint64_t now_ns, std::vector<Conn>* out);
  size_t ImportConns(const std::vector<Conn>& conns, uint64_t now_ns);

  // Live migration's delta. StartTracking, before the bulk export, begins remembering changes;
  // TakeDelta hands over the entries created or changed since the start or the previous
  // delta (as ExportConns gives them; copied in slices on the owner, never all at once)
  // and the keys of entries removed meanwhile; StopTracking
  // ends it (migration done or cancelled). The destination applies RemoveConns(removed), then
  // ImportConns(changed). The memory for all of it is made and freed on the caller: neither the
  // owner nor the datapath allocates while tracking, however many entries change or go.
  void StartTracking();
  void TakeDelta(uint64_t now_ns, std::vector<Conn>* changed, std::vector<ConnKey>* removed);
  void StopTracking();
  size_t RemoveConns(const std::vector<ConnKey>& keys);

  // Removes expired entries, examining at most `budget` slots on the owner (its worker
  // waits for them); returns how many it removed. New entries sweep too (SweepSlots), so a
  // control tick's kSweepSlice is enough however fast connections come.
  static constexpr uint32_t kSweepSlice = 4096;
  static constexpr uint32_t kRebuildSlice = 1024;  // entries moved to a grown index per owner call
  size_t Expire(uint64_t now_ns, uint32_t budget);
  // Each control tick: backs the connection slots the datapath may fill before the next tick
  // with memory (a failure, such as a full tmpfs, is returned; new connections beyond what is
  // backed are refused as state-limit), and stamps the segment with the clock (now_ns) at the
  // boot clock's boot_ns, so that a later process can read the deadlines. In two steps, for a
  // caller that runs the first for many filters in one call on their owner: AheadTarget (on
  // the owner) stamps and says how many slots to back, CommitSlots backs them (on the caller:
  // pages may take a while to find, and the mapping does not move).
  // The same two steps grow the hash index as the table fills (ConnTable::IndexWanted): the
  // new index is made on the caller and filled in slices on the owner.
  Status CommitAhead(uint64_t now_ns, uint64_t boot_ns) {
    return CommitSlots(AheadTarget(now_ns, boot_ns));
  }
  struct Ahead {
    uint32_t slots = 0;    // to back with memory
    uint32_t buckets = 0;  // the index wanted (0: it has enough)
  };
  Ahead AheadTarget(uint64_t now_ns, uint64_t boot_ns);
  Status CommitSlots(const Ahead& a);
  // The port or its firewall is gone: its segment file goes (the memory when the last user lets go).
  void DiscardSegment();
  uint32_t flow_count() const;
  size_t memory_bytes() const;

 private:
  void GrowIndex(uint32_t buckets);  // on the caller: to `buckets` (0: nothing), in slices
  struct FragKey {
    IpAddr src, dst;
    uint32_t id;
    uint32_t expires_s;
    uint16_t hdr_end;  // later fragments must start at or after it (no header overwrites)
    uint8_t proto;     // IPv4 only: IPv6 identifies a datagram by addresses and id
  };
  // A SYN let through on a live connection (TcpTrack::kIgnoredSyn), waiting for its SYN/ACK.
  struct SynHint {
    uint64_t flow_id;  // of the entry it arrived on (an index may be reused)
    uint32_t idx;
    uint32_t seq;
    uint32_t expires_s;
    uint16_t window;
    uint8_t wscale;
    uint8_t dir;
  };

  // The rule counters of a burst's established packets, added to stats_ once per run of
  // packets on one rule and direction (a burst's packets mostly share a few rules).
  struct RuleCount {
    uint32_t pos = 0;  // 0: none pending
    bool in = false;
    uint32_t pkts = 0;
    uint64_t bytes = 0;
  };
  void Count(RuleCount* rc, uint32_t pos, bool in, uint32_t len) {
    if (pos != rc->pos || in != rc->in) StartCount(rc, pos, in);
    rc->pkts++;
    rc->bytes += len;
  }
  void StartCount(RuleCount* rc, uint32_t pos, bool in);  // adds the pending run first
  // The established path whole (a live entry of the current generation, no SYN, fragment,
  // ICMP or ICMP error): true when it decided the packet, false for ProcessIp to take it.
  bool Established(FilterBatch& b, uint16_t i, const Packet& p, const Keyed& k,
                   const RuleTable& t, uint32_t now_s, RuleCount* rc);
  void ProcessIp(FilterBatch& b, uint16_t i, const Packet& p, const Keyed* keyed,
                 const RuleTable& t, uint32_t now_s);
  // track: false for what makes no connection (ICMP other than echo).
  void NewConnection(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t,
                     uint32_t now_s, const ConnKey& key, bool src_is_lo, bool track);
  // The accepting rule a new connection opened by p would get, or -1 with *why set.
  int Admit(bool in, const Packet& p, const RuleTable& t, DropReason* why) const;
  bool Related(const FilterBatch& b, const Packet& p, const RuleTable& t, uint32_t now_s);
  // A SYN on live entry idx: judged as a new connection; remembered when it passes.
  void IgnoredSyn(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t, uint32_t idx,
                  int dir, uint32_t now_s);
  // A SYN/ACK answering a remembered SYN: the entry is replaced by the new connection.
  bool Reopen(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t, uint32_t idx,
              int dir, const ConnKey& key, bool src_is_lo, uint32_t now_s);
  // Room in *v for `more` elements, made on the caller so that the owner only copies; grown
  // geometrically, as callers page through a table in many calls.
  template <typename T>
  static void RoomFor(std::vector<T>* v, size_t more) {
    if (v->capacity() - v->size() < more) v->reserve(std::max(v->capacity() * 2, v->size() + more));
  }
  SynHint& HintFor(uint32_t idx) { return syn_hints_[idx % syn_hints_.size()]; }
  // The position of t's rule that admits a connection with this original tuple and kConn*
  // flags (it accepts, statefully), or -1. Reads only its arguments: safe on any thread.
  static int AdmittingRule(const Tuple& orig, uint8_t flags, const RuleTable& t);
  // An entry (ConnEntry or Conn) takes the rule at pos of t, and t's generation.
  template <typename C>
  static void TakeRule(C& c, const RuleTable& t, int pos) {
    c.rule_id = t.rules()[static_cast<size_t>(pos)].id;
    c.rule_pos = static_cast<uint16_t>(pos + 1);
    c.generation = static_cast<uint16_t>(t.generation());
  }
  // Entry idx still admitted by t (it then takes the rule), or, with the re-check option off,
  // it only takes t's generation.
  bool Recheck(uint32_t idx, const RuleTable& t);
  // A packet of entry idx in direction dir: its counters, deadline and rule's counters (into rc
  // when given, else at once).
  void Account(uint32_t idx, int dir, uint32_t len, uint32_t now_s, RuleCount* rc = nullptr);
  // pkts packets of `bytes` on the rule at position pos (1-based; 0: none), evaluated or not.
  void CountRule(uint32_t pos, bool in, uint64_t pkts, uint64_t bytes, bool eval);
  void Close(uint32_t idx, CloseReason why, uint64_t now_ns, unsigned worker);
  // Closes what expired among the next n slots of the sweep (wrapping; at most the table's
  // slots); returns how many. Every new entry sweeps kSweepSlots; Expire a slice a tick.
  static constexpr uint32_t kSweepSlots = 4;
  size_t SweepSlots(uint32_t n, uint32_t now_s, uint64_t now_ns, unsigned worker);
  // Prefetches for the slots the sweep reaches after slot i (see the .cc).
  static constexpr uint32_t kSweepAhead = 4, kSweepRing = 16;
  struct SweepHash {
    uint32_t slot = ConnTable::kNil;
    uint64_t hash = 0;
  };
  void SweepAhead(uint32_t i, uint32_t used, uint32_t now_s);
  // Why the table refused a new entry: at its limit, or no slot backed yet (ConnTable::full).
  DropReason Refused() const { return conns_.full() ? DropReason::kStateLimit : DropReason::kStateHeadroom; }
  void LogPacket(const FilterBatch& b, const Packet& p, uint32_t len, LogEvent::Kind kind,
                 LogEvent::Action action, uint32_t rule_id);
  void RememberFragment(const Packet& p, uint32_t now_s);
  bool FragmentAdmitted(const Packet& p, uint32_t now_s) const;

  const uint32_t filter_id_;
  PacketLog* log_;
  // Touched on the owner only (Process, OnOwner):
  FirewallOptions options_;
  std::shared_ptr<const RuleTable> table_;
  std::vector<RuleStats> stats_;
  ConnTable conns_;
  uint64_t next_flow_id_;
  uint32_t sweep_cursor_ = 0;
  SweepHash sweep_ring_[kSweepRing];
  std::vector<FragKey> frags_;    // kFragSets sets of kFragWays, each set oldest first
  std::vector<SynHint> syn_hints_;
  LogBudget log_budget_;
  // The migration's side (the thread taking deltas): the change lists the worker will get at the
  // next delta, and how many slots they must have room for.
  uint32_t tracked_slots_ = 0;
  std::vector<uint32_t> spare_touched_;
  std::vector<ConnKey> spare_removed_;
};

}  // namespace palisade::fw
