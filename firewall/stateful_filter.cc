#include "firewall/stateful_filter.h"

#include <algorithm>
#include <cstring>

#include "firewall/parsed.h"
#include "firewall/reject.h"
#include "firewall/tcp_tracker.h"

namespace palisade::fw {
namespace {

// First fragments remembered: a 4-way set-associative table, so that a few datagrams in flight
// at once do not evict each other.
constexpr size_t kFragSets = 64, kFragWays = 4;
constexpr uint32_t kFragTimeoutS = 30;
constexpr size_t kSynHints = 64;
constexpr uint32_t kSynHintS = 30;  // how long a passed SYN waits for its SYN/ACK

ClassifyKey KeyOf(bool in, bool v6, const Tuple& t, uint8_t icmp_type, uint8_t icmp_code) {
  ClassifyKey k{in, v6, t.proto, t.src, t.dst, 0, 0};
  if (t.proto == kProtoTcp || t.proto == kProtoUdp) {
    k.sport = t.sport;
    k.dport = t.dport;
  } else if (t.proto == kProtoIcmp || t.proto == kProtoIcmp6) {
    k.sport = icmp_type;
    k.dport = icmp_code;
  }
  return k;
}

}  // namespace

bool FlowSelector::Matches(const Tuple& t) const {
  if (has_src && !src.Contains(t.src)) return false;
  if (has_dst && !dst.Contains(t.dst)) return false;
  if (proto != kAny && proto != t.proto) return false;
  if (sport != kAny && sport != t.sport) return false;
  if (dport != kAny && dport != t.dport) return false;
  return true;
}

StatefulFilter::StatefulFilter(uint32_t filter_id, PacketLog* log, FirewallOptions options,
                               uint64_t seed, std::optional<uint64_t> hash_seed,
                               std::unique_ptr<ConnSegment> segment)
    : filter_id_(filter_id),
      log_(log),
      options_(options),
      conns_(options.conn_limit, hash_seed.value_or(seed), std::move(segment)),
      next_flow_id_((seed & 0x0000ffff00000000ull) | 1),  // 48 bits, as entries keep them
      frags_(kFragSets * kFragWays, FragKey{}),
      syn_hints_(kSynHints, SynHint{}) {}

void StatefulFilter::SetTable(std::shared_ptr<const RuleTable> table) {
  std::vector<RuleStats> stats(table ? table->rules().size() : 0);  // made here, not on the worker
  OnOwner([&] {
    stats_.swap(stats);
    table_.swap(table);
  });
}  // the old table and counters are freed here, with `table` and `stats`

std::shared_ptr<const RuleTable> StatefulFilter::table() const {
  std::shared_ptr<const RuleTable> t;
  OnOwner([&] { t = table_; });
  return t;
}

FirewallOptions StatefulFilter::options() const {
  FirewallOptions o;
  OnOwner([&] { o = options_; });
  return o;
}

Status StatefulFilter::SetOptions(const FirewallOptions& options) {
  Status s = Status::Ok();
  OnOwner([&] {
    s = conns_.set_limit(options.conn_limit);
    if (s.ok()) options_ = options;
  });
  return s;
}

std::vector<RuleStats> StatefulFilter::rule_stats() const {
  std::vector<RuleStats> out;  // sized here, so that the worker only copies
  for (bool copied = false; !copied;) {
    size_t n = 0;
    OnOwner([&] {
      n = stats_.size();
      copied = n == out.size();
      if (copied) std::copy(stats_.begin(), stats_.end(), out.begin());
    });
    out.resize(n);
  }
  return out;
}

uint32_t StatefulFilter::flow_count() const {
  uint32_t n = 0;
  OnOwner([&] { n = conns_.size(); });
  return n;
}

size_t StatefulFilter::memory_bytes() const {
  size_t n = 0;
  OnOwner([&] { n = conns_.memory_bytes(); });
  return n;
}

void StatefulFilter::Process(FilterBatch& b) {
  const RuleTable* t = table_.get();
  if (t == nullptr) {
    for (uint16_t i = 0; i < b.count; i++) b.verdict[i] = Verdict::kUndecided;
    return;
  }
  const uint32_t now_s = static_cast<uint32_t>(b.now_ns / 1000000000ull);
  const bool in = b.dir == Direction::kIn;
  // Key and hash the burst first and prefetch what its lookups touch, so that the table's cache
  // misses overlap instead of stalling one packet at a time (packets with a scratch: the
  // datapath's; unit tests without one take the plain path below).
  const Keyed* keyed[kBurstSize];
  const uint64_t seed = conns_.seed();
  for (uint16_t i = 0; i < b.count; i++) {
    keyed[i] = KeyedAlready(b, i, seed);
    if (keyed[i] == nullptr) {
      if (b.scratch[i] == nullptr) continue;
      const Packet& p = Parsed(b, i, nullptr);
      if (p.error != ParseError::kNone || !p.ip || (p.fragment && !p.first_fragment)) continue;
      keyed[i] = &KeyOf(b, i, p, seed, nullptr);
    }
    conns_.PrefetchBucket(keyed[i]->hash);
  }
  for (uint16_t i = 0; i < b.count; i++) {
    if (keyed[i] != nullptr) conns_.PrefetchEntry(keyed[i]->hash);
  }
  Packet local;
  RuleCount rc;
  const bool l2_rules = !t->l2_rules().empty();
  for (uint16_t i = 0; i < b.count; i++) {
    const Keyed* k = keyed[i];
    const bool plain = k != nullptr && k->plain;
    if (plain && !l2_rules) {  // the usual packet: no parse checks or L2 rules to go through
      const Packet& p = ParsedIn(b, i);
      if (!Established(b, i, p, *k, *t, now_s, &rc)) ProcessIp(b, i, p, k, *t, now_s);
      continue;
    }
    const Packet& p = Parsed(b, i, &local);
    if (p.error != ParseError::kNone) {
      b.verdict[i] = Verdict::kDrop;
      b.reason[i] = DropReason::kMalformed;
      continue;
    }
    const int l2 = t->MatchL2(in, p.ethertype, p.src_mac, p.dst_mac);
    if (l2 >= 0) {
      const L2Rule& r = t->l2_rules()[static_cast<size_t>(l2)];
      if (r.action != Action::kAccept) {
        b.verdict[i] = Verdict::kDrop;
        b.reason[i] = DropReason::kRule;
        if (r.log) LogPacket(b, p, b.pkts[i].len, LogEvent::Kind::kMatch, LogEvent::Action::kDrop, r.id);
        continue;
      }
    }
    if (!p.ip || (plain && Established(b, i, p, *k, *t, now_s, &rc))) continue;
    ProcessIp(b, i, p, k, *t, now_s);
  }
  CountRule(rc.pos, rc.in, rc.pkts, rc.bytes, /*eval=*/false);
}

void StatefulFilter::StartCount(RuleCount* rc, uint32_t pos, bool in) {
  CountRule(rc->pos, rc->in, rc->pkts, rc->bytes, /*eval=*/false);
  *rc = RuleCount{pos, in, 0, 0};
}

inline void StatefulFilter::Account(uint32_t idx, int dir, uint32_t len, uint32_t now_s, RuleCount* rc) {
  ConnEntry& c = conns_.at(idx);
  conns_.Touch(idx);
  c.pkts[dir]++;
  c.bytes[dir] += len;
  c.expires_s = now_s + options_.timeouts.For(c.proto, c.state);
  const bool pkt_in = (dir == 0) == ((c.flags & kConnOrigIn) != 0);
  if (rc != nullptr) {
    Count(rc, c.rule_pos, pkt_in, len);
  } else {
    CountRule(c.rule_pos, pkt_in, 1, len, /*eval=*/false);
  }
}

// What ProcessIp does for the same packet (k.plain), without its cases for the rest.
inline bool StatefulFilter::Established(FilterBatch& b, uint16_t i, const Packet& p, const Keyed& k,
                                        const RuleTable& t, uint32_t now_s, RuleCount* rc) {
  const uint8_t proto = p.tuple.proto;
  const uint32_t idx = conns_.Find(k.key, k.hash);
  if (idx == ConnTable::kNil) return false;
  ConnEntry& c = conns_.at(idx);
  // A re-check first, or a connection whose time is up but the sweep has not reached yet.
  if (c.generation != static_cast<uint16_t>(t.generation()) || c.expires_s <= now_s) return false;
  const int dir = (k.src_is_lo == ((c.flags & kConnOrigIsLo) != 0)) ? 0 : 1;
  if (proto == kProtoTcp) {
    if (TcpUpdate(c, dir, p) != TcpTrack::kValid) {  // without a SYN: out of window
      b.verdict[i] = Verdict::kDrop;
      b.reason[i] = DropReason::kTcpInvalid;
      return true;
    }
  } else if (dir == 1 && c.state == ConnState::kNew) {
    c.state = ConnState::kMultiple;
  }
  Account(idx, dir, b.pkts[i].len, now_s, rc);
  return true;
}

void StatefulFilter::ProcessIp(FilterBatch& b, uint16_t i, const Packet& p, const Keyed* keyed,
                               const RuleTable& t, uint32_t now_s) {
  const uint32_t len = b.pkts[i].len;
  auto drop = [&](DropReason why) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = why;
  };
  if (p.fragment && !p.first_fragment) {
    if (!FragmentAdmitted(p, now_s)) drop(DropReason::kFragment);
    return;
  }
  if (p.icmp_error && Related(b, p, t, now_s)) return;
  Keyed local{};
  const Keyed& k = keyed != nullptr ? *keyed : KeyOf(b, i, p, conns_.seed(), &local);
  const ConnKey& key = k.key;
  const bool src_is_lo = k.src_is_lo;
  const bool icmp = p.tuple.proto == (p.v6 ? kProtoIcmp6 : kProtoIcmp);
  if (icmp && !p.icmp_echo) {  // no connection: its type and code meet the rules every time
    NewConnection(b, i, p, t, now_s, key, src_is_lo, /*track=*/false);
    return;
  }
  uint32_t idx = conns_.Find(key, k.hash);
  if (idx != ConnTable::kNil) {
    const ConnEntry& c = conns_.at(idx);
    if (c.expires_s <= now_s) {  // timed out: gone, whether or not the sweep has come by
      Close(idx, CloseReason::kTimeout, b.now_ns, b.worker);
      idx = ConnTable::kNil;
    } else if (c.generation != static_cast<uint16_t>(t.generation()) && !Recheck(idx, t)) {
      Close(idx, CloseReason::kRuleChange, b.now_ns, b.worker);
      idx = ConnTable::kNil;
    }
  }
  if (idx != ConnTable::kNil) {
    ConnEntry& c = conns_.at(idx);
    const int dir = (src_is_lo == ((c.flags & kConnOrigIsLo) != 0)) ? 0 : 1;
    if (c.proto == kProtoTcp) {
      const bool syn_ack = (p.tcp_flags & (tcp::kSyn | tcp::kAck)) == (tcp::kSyn | tcp::kAck);
      if (syn_ack && Reopen(b, i, p, t, idx, dir, key, src_is_lo, now_s)) return;
      switch (TcpUpdate(c, dir, p)) {
        case TcpTrack::kOutOfWindow: drop(DropReason::kTcpInvalid); return;
        case TcpTrack::kIgnoredSyn: IgnoredSyn(b, i, p, t, idx, dir, now_s); return;
        case TcpTrack::kReopen:
          Close(idx, CloseReason::kFin, b.now_ns, b.worker);
          idx = ConnTable::kNil;
          break;
        case TcpTrack::kValid: break;
      }
    } else if (dir == 1 && c.state == ConnState::kNew) {
      c.state = ConnState::kMultiple;
    }
    if (idx != ConnTable::kNil) {
      Account(idx, dir, len, now_s);
      if (p.first_fragment) RememberFragment(p, now_s);
      return;
    }
  }
  NewConnection(b, i, p, t, now_s, key, src_is_lo, /*track=*/true);
}

bool StatefulFilter::Related(const FilterBatch& b, const Packet& p, const RuleTable& t,
                             uint32_t now_s) {
  // An error goes back to the sender of the packet it quotes (a router on the way may send it).
  if (!(p.tuple.dst == p.quoted.src)) return false;
  bool quoted_src_is_lo;
  const uint32_t idx = conns_.Find(MakeKey(p.quoted, &quoted_src_is_lo));
  if (idx == ConnTable::kNil) return false;
  const ConnEntry& c = conns_.at(idx);
  if (c.expires_s <= now_s || c.state == ConnState::kClosed) return false;  // not live
  if (c.generation != static_cast<uint16_t>(t.generation()) && !Recheck(idx, t)) {
    Close(idx, CloseReason::kRuleChange, b.now_ns, b.worker);
    return false;
  }
  // The quoted packet must be one the connection carried, through this port the other way.
  const int quoted_dir = (quoted_src_is_lo == ((c.flags & kConnOrigIsLo) != 0)) ? 0 : 1;
  if (c.pkts[quoted_dir] == 0) return false;
  const bool quoted_in = (quoted_dir == 0) == ((c.flags & kConnOrigIn) != 0);
  return quoted_in != (b.dir == Direction::kIn);
}

int StatefulFilter::Admit(bool in, const Packet& p, const RuleTable& t, DropReason* why) const {
  const int pos = t.classifier().Lookup(KeyOf(in, p.v6, p.tuple, p.icmp_type, p.icmp_code));
  if (pos < 0) {
    *why = DropReason::kDefault;
    return -1;
  }
  const Rule& r = t.rules()[static_cast<size_t>(pos)];
  if (r.action == Action::kAccept && !r.stateless) return pos;
  *why = r.action == Action::kReject ? DropReason::kReject : DropReason::kRule;
  return -1;
}

void StatefulFilter::IgnoredSyn(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t,
                                uint32_t idx, int dir, uint32_t now_s) {
  DropReason why;
  if (Admit(b.dir == Direction::kIn, p, t, &why) < 0) {  // a new connection the rules refuse
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = why;
    return;
  }
  HintFor(idx) = SynHint{conns_.at(idx).flow_id(), idx, p.seq, now_s + kSynHintS, p.window,
                         p.wscale, static_cast<uint8_t>(dir)};
  Account(idx, dir, b.pkts[i].len, now_s);
}

bool StatefulFilter::Reopen(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t,
                            uint32_t idx, int dir, const ConnKey& key, bool src_is_lo,
                            uint32_t now_s) {
  const SynHint h = HintFor(idx);
  if (h.idx != idx || h.flow_id != conns_.at(idx).flow_id() || h.dir == dir || h.expires_s <= now_s ||
      p.ack != h.seq + 1) {
    return false;
  }
  HintFor(idx) = SynHint{};
  // The remembered SYN opens the new connection; this SYN/ACK answers it.
  Packet syn;
  syn.ip = true;
  syn.v6 = p.v6;
  syn.tuple = Tuple{p.tuple.dst, p.tuple.src, p.tuple.dport, p.tuple.sport, kProtoTcp};
  syn.tcp_flags = tcp::kSyn;
  syn.seq = h.seq;
  syn.window = h.window;
  syn.wscale = h.wscale;
  const bool syn_in = b.dir != Direction::kIn;
  Close(idx, CloseReason::kReopen, b.now_ns, b.worker);
  DropReason why;
  const int pos = Admit(syn_in, syn, t, &why);
  const uint32_t n = pos < 0 ? ConnTable::kNil : conns_.Insert(key);
  if (n == ConnTable::kNil) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = pos < 0 ? DropReason::kTcpInvalid : Refused();
    return true;
  }
  const Rule& r = t.rules()[static_cast<size_t>(pos)];
  ConnEntry& c = conns_.at(n);
  c.flags |= static_cast<uint8_t>((src_is_lo ? 0 : kConnOrigIsLo) | (syn_in ? kConnOrigIn : 0) |
                                  (r.log ? kConnLog : 0) | (p.v6 ? kConnV6 : 0));
  TakeRule(c, t, pos);
  c.set_flow_id(next_flow_id_++);
  TcpStart(c, syn, r.strict);
  c.pkts[0] = 1;
  if (TcpUpdate(c, 1, p) != TcpTrack::kValid) {  // cannot happen: it acknowledges the SYN
    conns_.Remove(n);
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = DropReason::kTcpInvalid;
    return true;
  }
  Account(n, 1, b.pkts[i].len, now_s);
  return true;
}

void StatefulFilter::NewConnection(FilterBatch& b, uint16_t i, const Packet& p, const RuleTable& t,
                                   uint32_t now_s, const ConnKey& key, bool src_is_lo, bool track) {
  const bool in = b.dir == Direction::kIn;
  const uint32_t len = b.pkts[i].len;
  const int pos = t.classifier().Lookup(KeyOf(in, p.v6, p.tuple, p.icmp_type, p.icmp_code));
  if (pos < 0) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = DropReason::kDefault;
    return;
  }
  const Rule& r = t.rules()[static_cast<size_t>(pos)];
  CountRule(static_cast<uint32_t>(pos + 1), in, 1, len, /*eval=*/true);
  if (r.action == Action::kDrop) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = DropReason::kRule;
    if (r.log) LogPacket(b, p, len, LogEvent::Kind::kMatch, LogEvent::Action::kDrop, r.id);
    return;
  }
  if (r.action == Action::kReject) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = DropReason::kReject;
    if (b.emit != nullptr) {
      std::vector<uint8_t> reply = BuildReject(b.pkts[i].data, len, p);
      if (!reply.empty()) b.emit->Emit(reply.data(), static_cast<uint32_t>(reply.size()));
    }
    if (r.log) LogPacket(b, p, len, LogEvent::Kind::kMatch, LogEvent::Action::kReject, r.id);
    return;
  }
  if (r.log) LogPacket(b, p, len, LogEvent::Kind::kMatch, LogEvent::Action::kPass, r.id);
  if (r.stateless || !track) {
    if (p.first_fragment) RememberFragment(p, now_s);
    return;
  }
  // Each new entry pays for a few slots of the expiry sweep, on the worker that owns the table.
  // Entries come no faster than these steps go round the table, so it never fills with the
  // dead however fast connections are set up, and the control thread's sweep (Expire, a slice
  // a tick, for tables without new connections) stays small: when it swept faster instead,
  // its slices cost the worker 8% of its cycles at 300,000 setups a second.
  (void)SweepSlots(kSweepSlots, now_s, b.now_ns, b.worker);
  const uint32_t idx = conns_.Insert(key);
  if (idx == ConnTable::kNil) {
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = Refused();
    LogPacket(b, p, len, LogEvent::Kind::kStateLimit, LogEvent::Action::kDrop, r.id);
    return;
  }
  ConnEntry& c = conns_.at(idx);
  c.flags |= static_cast<uint8_t>((src_is_lo ? kConnOrigIsLo : 0) | (in ? kConnOrigIn : 0) |
                                  (r.log ? kConnLog : 0) | (p.v6 ? kConnV6 : 0));
  TakeRule(c, t, pos);
  c.set_flow_id(next_flow_id_++);
  if (c.proto == kProtoTcp && TcpStart(c, p, r.strict) == TcpOpen::kRefused) {
    conns_.Remove(idx);
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = DropReason::kTcpInvalid;
    return;
  }
  if (c.proto != kProtoTcp) c.state = ConnState::kNew;
  c.pkts[0] = 1;
  c.bytes[0] = len;
  c.expires_s = now_s + options_.timeouts.For(c.proto, c.state);
  if (p.first_fragment) RememberFragment(p, now_s);
}

bool StatefulFilter::Recheck(uint32_t idx, const RuleTable& t) {
  ConnEntry& c = conns_.at(idx);
  if (!options_.recheck) {
    c.generation = static_cast<uint16_t>(t.generation());
    c.rule_pos = 0;  // its rule's place in the new table is unknown
    return true;
  }
  const int pos = AdmittingRule(conns_.OrigTuple(idx), c.flags, t);
  if (pos < 0) return false;
  TakeRule(c, t, pos);
  return true;
}

int StatefulFilter::AdmittingRule(const Tuple& orig, uint8_t flags, const RuleTable& t) {
  const bool v6 = flags & kConnV6;
  uint8_t type = 0;
  if (orig.proto == kProtoIcmp) type = 8;     // ICMP entries are echo requests
  if (orig.proto == kProtoIcmp6) type = 128;
  const int pos = t.classifier().Lookup(KeyOf(flags & kConnOrigIn, v6, orig, type, 0));
  if (pos < 0) return -1;
  const Rule& r = t.rules()[static_cast<size_t>(pos)];
  return r.action == Action::kAccept && !r.stateless ? pos : -1;
}

void StatefulFilter::CountRule(uint32_t pos, bool in, uint64_t pkts, uint64_t bytes, bool eval) {
  if (pos == 0 || pos > stats_.size()) return;
  RuleStats& s = stats_[pos - 1];
  if (eval) s.evals++;
  s.pkts[in ? 0 : 1] += pkts;
  s.bytes[in ? 0 : 1] += bytes;
}

// A close unlinks its entry from its hash chain: in a large table, a cache miss for the bucket
// and another for each entry before it in the chain. So the sweep runs ahead of its closes in
// three stages kSweepAhead slots apart: the entry (to see whether it will close), the bucket of
// one that will, then the bucket's first entry; by the time the sweep closes it, its chain is
// in cache. The hashes wait in a small ring between the last two stages; a stale one (the slot
// was reused meanwhile) costs only a useless prefetch.
void StatefulFilter::SweepAhead(uint32_t i, uint32_t used, uint32_t now_s) {
  if (used < 4 * kSweepAhead) return;  // in cache already, and the stages would overlap
  auto wrap = [used](uint32_t k) { return k >= used ? k - used : k; };
  conns_.PrefetchSlot(wrap(i + 3 * kSweepAhead));
  const uint32_t b = wrap(i + 2 * kSweepAhead);
  const ConnEntry& c = conns_.at(b);
  if (IsConn(c.state) && c.expires_s <= now_s) {
    const uint64_t hash = conns_.Hash(conns_.Key(b));
    sweep_ring_[b % kSweepRing] = SweepHash{b, hash};
    conns_.PrefetchBucket(hash);
  }
  const uint32_t h = wrap(i + kSweepAhead);
  const SweepHash& r = sweep_ring_[h % kSweepRing];
  if (r.slot == h) conns_.PrefetchEntry(r.hash);
}

// Slots, not live entries, bound a slice: a table whose new entries have swept it is mostly
// free slots, and a slice looking for live ones among them read the whole table on the worker.
size_t StatefulFilter::SweepSlots(uint32_t n, uint32_t now_s, uint64_t now_ns, unsigned worker) {
  const uint32_t used = conns_.used();
  size_t removed = 0;
  uint32_t i = sweep_cursor_;
  for (uint32_t k = 0; k < std::min(n, used); k++, i++) {
    if (i >= used) i = 0;
    SweepAhead(i, used, now_s);
    const ConnEntry& c = conns_.at(i);
    if (!IsConn(c.state) || c.expires_s > now_s) continue;
    Close(i, CloseReason::kTimeout, now_ns, worker);  // frees only the entry it closes
    removed++;
  }
  sweep_cursor_ = i;
  return removed;
}

void StatefulFilter::Close(uint32_t idx, CloseReason why, uint64_t now_ns, unsigned worker) {
  const ConnEntry& c = conns_.at(idx);
  if ((c.flags & kConnLog) && log_ != nullptr) {
    LogEvent e{};
    e.now_ns = now_ns;
    e.filter_id = filter_id_;
    e.rule_id = c.rule_id;
    e.kind = LogEvent::Kind::kTerm;
    e.action = LogEvent::Action::kPass;
    e.in = c.flags & kConnOrigIn;
    e.v6 = c.flags & kConnV6;
    e.proto = c.proto;
    e.close_reason = static_cast<uint8_t>(c.reason != CloseReason::kNone ? c.reason : why);
    const Tuple t = conns_.OrigTuple(idx);
    e.src = t.src;
    e.dst = t.dst;
    e.sport = t.sport;
    e.dport = t.dport;
    std::memcpy(e.pkts, c.pkts, sizeof e.pkts);
    std::memcpy(e.bytes, c.bytes, sizeof e.bytes);
    if (table_) std::snprintf(e.ruleset, sizeof e.ruleset, "%s", table_->name().c_str());
    log_->Push(worker, e, &log_budget_);
  }
  conns_.Remove(idx);
}

void StatefulFilter::LogPacket(const FilterBatch& b, const Packet& p, uint32_t len,
                               LogEvent::Kind kind, LogEvent::Action action, uint32_t rule_id) {
  if (log_ == nullptr) return;
  LogEvent e{};
  e.now_ns = b.now_ns;
  e.filter_id = filter_id_;
  e.rule_id = rule_id;
  e.kind = kind;
  e.action = action;
  e.in = b.dir == Direction::kIn;
  e.v6 = p.v6;
  e.proto = p.tuple.proto;
  e.tcp_flags = p.tcp_flags;
  e.len = static_cast<uint16_t>(len);
  e.src = p.tuple.src;
  e.dst = p.tuple.dst;
  e.sport = p.tuple.sport;
  e.dport = p.tuple.dport;
  if (table_) std::snprintf(e.ruleset, sizeof e.ruleset, "%s", table_->name().c_str());
  log_->Push(b.worker, e, &log_budget_);
}

namespace {

size_t FragSet(const Packet& p) {
  uint32_t h = p.frag_id ^ (uint32_t{p.tuple.src.b[14]} << 8 | p.tuple.src.b[15]) ^
               (uint32_t{p.tuple.dst.b[14]} << 16 | uint32_t{p.tuple.dst.b[15]} << 24);
  h *= 2654435761u;
  return (h >> 16) % kFragSets;
}

bool SameDatagram(const IpAddr& src, const IpAddr& dst, uint32_t id, uint8_t proto,
                  const IpAddr& src2, const IpAddr& dst2, uint32_t id2, uint8_t proto2) {
  return id == id2 && proto == proto2 && src == src2 && dst == dst2;
}

}  // namespace

void StatefulFilter::RememberFragment(const Packet& p, uint32_t now_s) {
  FragKey* set = &frags_[FragSet(p) * kFragWays];
  const uint8_t proto = p.v6 ? 0 : p.tuple.proto;
  FragKey* slot = set;  // the same datagram's entry, else the one that expires first
  for (size_t w = 0; w < kFragWays; w++) {
    if (SameDatagram(set[w].src, set[w].dst, set[w].id, set[w].proto, p.tuple.src, p.tuple.dst,
                     p.frag_id, proto)) {
      slot = &set[w];
      break;
    }
    if (set[w].expires_s < slot->expires_s) slot = &set[w];
  }
  *slot = FragKey{p.tuple.src, p.tuple.dst, p.frag_id, now_s + kFragTimeoutS, p.frag_hdr_end, proto};
}

bool StatefulFilter::FragmentAdmitted(const Packet& p, uint32_t now_s) const {
  const FragKey* set = &frags_[FragSet(p) * kFragWays];
  const uint8_t proto = p.v6 ? 0 : p.tuple.proto;
  for (size_t w = 0; w < kFragWays; w++) {
    const FragKey& f = set[w];
    if (f.expires_s > now_s &&
        SameDatagram(f.src, f.dst, f.id, f.proto, p.tuple.src, p.tuple.dst, p.frag_id, proto)) {
      return p.frag_offset >= f.hdr_end;  // an overlap could rewrite the admitted header
    }
  }
  return false;
}

uint32_t StatefulFilter::Flows(uint32_t cursor, uint32_t max, const FlowSelector& sel,
                               uint64_t now_ns, std::vector<FlowInfo>* out) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  RoomFor(out, max);
  uint32_t next = 0;
  OnOwner([&] {
    next = conns_.Walk(cursor, max, [&](uint32_t idx, const ConnEntry& c) {
      const Tuple t = conns_.OrigTuple(idx);
      if (!sel.Matches(t)) return;
      FlowInfo f{c.flow_id(), c.state, (c.flags & kConnV6) != 0, (c.flags & kConnOrigIn) != 0,
                 c.rule_id, t, {c.pkts[0], c.pkts[1]}, {c.bytes[0], c.bytes[1]},
                 c.expires_s > now_s ? c.expires_s - now_s : 0};
      out->push_back(f);
    });
  });
  return next;
}

size_t StatefulFilter::Flush(const FlowSelector& sel, uint64_t now_ns) {
  constexpr uint32_t kSlice = 1024;  // a slice per call, so the worker waits for one at most
  size_t removed = 0;
  uint32_t cursor = 0;
  while (cursor != ConnTable::kNil) {
    OnOwner([&] {  // closes as it walks: Close frees only the entry it closes
      cursor = conns_.Walk(cursor, kSlice, [&](uint32_t idx, const ConnEntry&) {
        if (!sel.Matches(conns_.OrigTuple(idx))) return;
        Close(idx, CloseReason::kFlush, now_ns, PacketLog::kControl);
        removed++;
      });
    });
  }
  return removed;
}

size_t StatefulFilter::Expire(uint64_t now_ns, uint32_t budget) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  size_t removed = 0;
  OnOwner([&] { removed = SweepSlots(budget, now_s, now_ns, PacketLog::kControl); });
  return removed;
}

StatefulFilter::Ahead StatefulFilter::AheadTarget(uint64_t now_ns, uint64_t boot_ns) {
  Ahead a;
  OnOwner([&] {
    a.slots = conns_.CommitTarget();
    a.buckets = conns_.IndexWanted(conns_.size());
    conns_.segment()->Stamp(static_cast<uint32_t>(now_ns / 1000000000ull), boot_ns);
  });
  return a;
}

Status StatefulFilter::CommitSlots(const Ahead& a) {
  GrowIndex(a.buckets);
  if (!conns_.segment()->Commit(a.slots)) {
    return Status::Unavailable("no memory for connections in " + conns_.segment()->path());
  }
  return Status::Ok();
}

void StatefulFilter::GrowIndex(uint32_t buckets) {
  if (buckets == 0) return;
  std::vector<uint32_t> index = ConnTable::Index(buckets);  // made here, not on the owner
  OnOwner([&] { conns_.GrowIndex(&index); });
  // The entries move in slices (at most 0.2-0.3 ms each at a million entries), between which
  // the worker goes on; the old index is freed here.
  std::vector<uint32_t> old;
  for (bool done = false; !done;) {
    OnOwner([&] {
      done = conns_.RebuildStep(kRebuildSlice);
      if (done) conns_.TakeOldIndex(&old);
    });
  }
}

void StatefulFilter::DiscardSegment() {
  conns_.segment()->Discard();  // the file only: the mapping stays, so not on the owner
}

}  // namespace palisade::fw
