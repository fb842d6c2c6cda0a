// The stateful filter's export and import of connection entries: restarts, and live
// migration's bulk copy, change tracking and deltas (stateful_filter.h).
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

#include "firewall/stateful_filter.h"

namespace palisade::fw {
namespace {

constexpr size_t kAhead = 8;  // how far bulk lookups prefetch ahead (ConnTable::Prefetch*)

// An entry as it leaves the filter (export, delta): its timeout as the seconds it has left,
// since clocks differ between switches.
Conn Exported(Conn c, uint32_t now_s) {
  c.expires_s = c.expires_s > now_s ? c.expires_s - now_s : 0;
  return c;
}

// Bulk work by key (import, removals): fn(i) for i in [0, n), in slices each run through
// on_owner (the filter's OnOwner), so that the worker serving the port waits for one slice at
// most, with the table prefetched ahead (ConnTable::Prefetch*). fn returns false to stop.
template <typename OnOwnerFn, typename KeyAt, typename Fn>
void InSlices(OnOwnerFn on_owner, const ConnTable& table, size_t n, KeyAt key_at, Fn fn) {
  constexpr size_t kSlice = 4096;
  bool go = true;
  for (size_t start = 0; go && start < n; start += kSlice) {
    on_owner([&] {
      const size_t end = std::min(n, start + kSlice);
      for (size_t i = start; go && i < end; i++) {
        if (i + 2 * kAhead < end) table.PrefetchBucket(key_at(i + 2 * kAhead));
        if (i + kAhead < end) table.PrefetchEntry(key_at(i + kAhead));
        go = fn(i);
      }
    });
  }
}

// An entry from a peer switch or a file is trusted no further than it checks out: a key in its
// normal form that agrees with its direction flag, a state of its protocol, known flags and
// reasons, window scales TCP allows (at most 14), and no more time left than this filter's
// timeout for its state. Anything else is refused, never repaired.
bool Sane(Conn& c, const Timeouts& timeouts) {
  constexpr uint8_t kKnownFlags = kConnOrigIsLo | kConnOrigIn | kConnLog | kConnV6 | kConnLiberal;
  if ((c.flags & ~kKnownFlags) != 0 || c.reason > CloseReason::kReopen) return false;
  const bool tcp = c.proto == kProtoTcp;
  if (tcp ? (c.state < ConnState::kSynSent || c.state > ConnState::kClosed)
          : (c.state != ConnState::kNew && c.state != ConnState::kMultiple)) {
    return false;
  }
  if (!(c.flags & kConnV6) && !(c.lo.is_v4() && c.hi.is_v4())) return false;
  bool src_is_lo = false;
  if (!(MakeKey(c.OrigTuple(), &src_is_lo) == c.key()) || src_is_lo != ((c.flags & kConnOrigIsLo) != 0)) {
    return false;
  }
  for (const TcpPeer& p : c.peer) {
    if (p.scale > 14 || (p.flags & ~(kPeerFin | kPeerWscale)) != 0) return false;
  }
  c.expires_s = std::min(c.expires_s, timeouts.For(c.proto, c.state));
  return true;
}

}  // namespace

uint32_t StatefulFilter::ExportConns(uint32_t cursor, uint32_t max, uint64_t now_ns,
                                     std::vector<Conn>* out) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  RoomFor(out, max);
  uint32_t next = 0;
  OnOwner([&] {
    next = conns_.Walk(cursor, max,
                       [&](uint32_t idx, const ConnEntry&) { out->push_back(Exported(conns_.Get(idx), now_s)); });
  });
  return next;
}

size_t StatefulFilter::ImportConns(const std::vector<Conn>& conns, uint64_t now_ns) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  uint32_t target = 0;
  std::shared_ptr<const RuleTable> table;
  Timeouts timeouts;
  size_t slots = 0;  // an IPv6 entry takes two
  for (const Conn& c : conns) slots += IsWide(c.key()) ? 2 : 1;
  uint32_t buckets = 0;
  OnOwner([&] {
    target = conns_.CommitTarget(slots);
    buckets = conns_.IndexWanted(size_t{conns_.size()} + conns.size());
    table = table_;
    timeouts = options_.timeouts;
  });
  (void)conns_.segment()->Commit(target);  // what finds no memory is refused below, as at the limit
  GrowIndex(buckets);  // before the entries arrive, not at the next tick
  // Each entry is checked, then judged by this filter's rules whatever the sender's re-check
  // option (without rules nothing is admitted): in parallel (TBB, on the CPUs the calling thread
  // may use), off the worker, as the classifier is immutable. A table swapped meanwhile makes
  // the entries re-checked at their next packet, like any other.
  enum : uint8_t { kSkip, kRefused, kAdmitted };
  std::vector<Conn> judged(conns.size());
  std::vector<uint8_t> verdict(conns.size(), kSkip);
  tbb::parallel_for(tbb::blocked_range<size_t>(0, conns.size(), 2048), [&](const tbb::blocked_range<size_t>& r) {
    for (size_t i = r.begin(); i != r.end(); i++) {
      Conn& c = judged[i];
      c = conns[i];
      if (c.state == ConnState::kFree || c.expires_s == 0 || !Sane(c, timeouts)) continue;
      const int pos = table ? AdmittingRule(c.OrigTuple(), c.flags, *table) : -1;
      if (pos >= 0) TakeRule(c, *table, pos);
      verdict[i] = pos >= 0 ? kAdmitted : kRefused;
    }
  });
  size_t taken = 0;
  InSlices([this](auto&& f) { OnOwner(f); }, conns_, judged.size(), [&](size_t i) { return judged[i].key(); }, [&](size_t i) {
    if (verdict[i] == kSkip) return true;
    Conn& c = judged[i];
    uint32_t idx = conns_.Find(c.key());
    if (verdict[i] == kRefused) {
      if (idx != ConnTable::kNil) conns_.Remove(idx);  // nor an older copy of it
      return true;
    }
    if (idx == ConnTable::kNil) idx = conns_.Insert(c.key());
    if (idx == ConnTable::kNil) return false;  // the limit: the rest cannot be taken either
    c.expires_s = now_s + c.expires_s;  // clamped by Sane
    WriteState(c, &conns_.at(idx));
    taken++;
    return true;
  });
  return taken;
}

void StatefulFilter::StartTracking() {
  // Made here for the table's slots (8 MB at a 1,000,000 limit), taken by the owner in a swap.
  for (bool started = false; !started;) {
    uint32_t slots = 0;
    OnOwner([&] { slots = conns_.tracking_slots(); });
    ConnTable::Tracking t = ConnTable::Tracking::For(slots);
    OnOwner([&] { started = conns_.StartTracking(&t) || conns_.tracking(); });
    tracked_slots_ = slots;
  }
}

void StatefulFilter::StopTracking() {
  ConnTable::Tracking t;  // the tracking's memory comes back, to be freed here
  OnOwner([&] { if (conns_.tracking()) conns_.StopTracking(&t); });
  std::vector<uint32_t>().swap(spare_touched_);
  std::vector<ConnKey>().swap(spare_removed_);
}

void StatefulFilter::TakeDelta(uint64_t now_ns, std::vector<Conn>* changed,
                               std::vector<ConnKey>* removed) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  // The lists change hands in one call (the worker's next ones are the previous delta's, emptied:
  // their memory is in use already); the entries are then copied a slice at a time, so a delta
  // of a million entries never holds the worker for the whole copy. What changes between slices
  // is tracked for the next delta (a slot copied here is no longer marked, so it is listed again
  // only when it changes again); a slot freed and reused meanwhile is copied as its new entry,
  // and the old entry's removal comes in the next delta's removals.
  std::vector<uint32_t> touched = std::move(spare_touched_);
  std::vector<ConnKey> gone = std::move(spare_removed_);
  touched.clear();
  gone.clear();
  touched.reserve(tracked_slots_);
  gone.reserve(ConnTable::kRemovedRoom);
  OnOwner([&] { conns_.SwapChanges(&touched, &gone); });
  removed->insert(removed->end(), gone.begin(), gone.end());
  constexpr size_t kSlice = 4096;
  RoomFor(changed, touched.size());
  for (size_t start = 0; start < touched.size(); start += kSlice) {
    RoomFor(removed, kSlice);  // a slot gone (removed with no room for its key) is one more
    OnOwner([&] {
      const size_t end = std::min(touched.size(), start + kSlice);
      for (size_t i = start; i < end; i++) {
        if (i + kAhead < end) conns_.PrefetchSlot(touched[i + kAhead]);
        const uint32_t idx = touched[i];
        if (!conns_.TakeTouched(idx)) continue;
        const ConnState state = conns_.at(idx).state;
        if (IsConn(state)) {
          changed->push_back(Exported(conns_.Get(idx), now_s));
        } else if (state == ConnState::kGone) {
          removed->push_back(conns_.Key(idx));
          conns_.ReleaseGone(idx);
        }
      }
    });
  }
  spare_touched_ = std::move(touched);
  spare_removed_ = std::move(gone);
}

size_t StatefulFilter::RemoveConns(const std::vector<ConnKey>& keys) {
  size_t removed = 0;
  InSlices([this](auto&& f) { OnOwner(f); }, conns_, keys.size(), [&](size_t i) { return keys[i]; }, [&](size_t i) {
    const uint32_t idx = conns_.Find(keys[i]);
    if (idx != ConnTable::kNil) {
      conns_.Remove(idx);
      removed++;
    }
    return true;
  });
  return removed;
}

}  // namespace palisade::fw
