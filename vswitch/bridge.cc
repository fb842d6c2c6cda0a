#include "vswitch/bridge.h"

#include "slot/mac_addr.h"

namespace palisade {
namespace {

// IEEE 802.1D reserved group addresses 01:80:c2:00:00:00-0f: link-local, a bridge never
// forwards them.
bool IsReservedGroup(uint64_t mac) { return (mac & ~uint64_t{0xf}) == 0x0180c2000000ull; }

}  // namespace

Bridge::Bridge(Options options, Retire retire)
    : options_(options), retire_(std::move(retire)), table_(new MacTable(options.max_entries)) {
  for (unsigned i = 0; i < (options_.workers ? options_.workers : 1); i++) {
    workers_.push_back(std::make_unique<PerWorker>());
  }
}

Bridge::~Bridge() { delete table_.load(); }

void Bridge::Learn(PerWorker& w, uint64_t mac, uint16_t port, uint32_t now_s) {
  MacTable* table = table_.load(std::memory_order_acquire);
  MacTable::Hit hit = table->Lookup(mac);
  if (hit.port == port) {
    table->Touch(hit.slot, now_s);
    return;
  }
  if (w.last_mac == mac && w.last_port == port && w.last_s == now_s) return;  // asked this second
  if (w.ring.Push(LearnEvent{mac, port})) {
    w.last_mac = mac;
    w.last_port = port;
    w.last_s = now_s;
  } else {
    w.lost.store(w.lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

Bridge::Decision Bridge::Forward(uint16_t worker, uint16_t in_port, const uint8_t* frame,
                                 uint32_t len, uint32_t now_s) {
  if (len < 14) return {kDrop, DropReason::kRunt};
  const uint64_t dst = MacFromBytes(frame);
  const uint64_t src = MacFromBytes(frame + 6);
  if (src == 0 || MacIsMulticast(src)) return {kDrop, DropReason::kBadSource};
  Learn(*workers_[worker], src, in_port, now_s);

  if (MacIsMulticast(dst)) {
    if (IsReservedGroup(dst)) return {kDrop, DropReason::kReservedMulticast};
    return {kFlood, DropReason::kNone};
  }
  MacTable::Hit hit = table_.load(std::memory_order_acquire)->Lookup(dst);
  if (hit.port == MacTable::kNoPort) return {kFlood, DropReason::kNone};
  if (hit.port == in_port) return {kDrop, DropReason::kSamePort};
  return {hit.port, DropReason::kNone};
}

void Bridge::SetPortLive(uint16_t port, bool live) { live_.set(port, live); }

void Bridge::Teach(uint64_t mac, uint16_t port, uint32_t now_s) {
  if (port < kMaxPorts && live_.test(port)) table_.load(std::memory_order_relaxed)->Learn(mac, port, now_s);
}

void Bridge::Poll(uint32_t now_s) {
  MacTable* table = table_.load(std::memory_order_relaxed);
  for (auto& w : workers_) {
    LearnEvent ev;
    while (w->ring.Pop(&ev)) {
      if (ev.port < kMaxPorts && live_.test(ev.port)) table->Learn(ev.mac, ev.port, now_s);
    }
  }
  if (now_s != last_age_s_) {
    last_age_s_ = now_s;
    table->Age(now_s, options_.ageing_s);
  }
  if (table->NeedsRebuild()) {
    table_.store(table->Rebuilt().release(), std::memory_order_release);
    retire_([table] { delete table; });
  }
}

size_t Bridge::RemovePort(uint16_t port) {
  live_.reset(port);
  return table_.load(std::memory_order_relaxed)->RemovePort(port);
}

size_t Bridge::Flush() { return table_.load(std::memory_order_relaxed)->RemoveAll(); }

std::vector<MacTable::Entry> Bridge::Dump() const {
  return table_.load(std::memory_order_acquire)->Dump();
}

uint64_t Bridge::learn_events_lost() const {
  uint64_t lost = 0;
  for (const auto& w : workers_) lost += w->lost.load(std::memory_order_relaxed);
  return lost;
}

}  // namespace palisade
