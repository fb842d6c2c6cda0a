#include "vswitch/worker.h"

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>

#include <cstring>

#include "vswitch/clock.h"

namespace palisade {
namespace {

void FillBatch(FilterBatch& b, Direction dir, uint16_t worker, uint64_t now_ns, rte_mbuf** pkts,
               uint16_t n) {
  b.dir = dir;
  b.worker = worker;
  b.now_ns = now_ns;
  b.count = n;
  for (uint16_t i = 0; i < n; i++) {
    b.pkts[i] = PacketRef{rte_pktmbuf_mtod(pkts[i], const uint8_t*), pkts[i]->data_len};
  }
}

// Drops the VLAN-tagged frames of a burst (802.1Q, 802.1ad, the old QinQ type); returns how
// many untagged ones remain, in order, at the front.
uint16_t DropTagged(rte_mbuf** pkts, uint16_t n, PortCounters& rx) {
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; i++) {
    const uint8_t* p = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
    const uint16_t type = pkts[i]->data_len >= 14 ? static_cast<uint16_t>(p[12] << 8 | p[13]) : 0;
    if (type == 0x8100 || type == 0x88a8 || type == 0x9100) {
      rx.Drop(DropReason::kVlanTagged);
      rte_pktmbuf_free(pkts[i]);
    } else {
      pkts[kept++] = pkts[i];
    }
  }
  return kept;
}

// A flooded packet goes to several ports: every segment gets one reference per destination.
void AddRefs(rte_mbuf* m, int16_t extra) {
  for (rte_mbuf* seg = m; seg != nullptr; seg = seg->next) rte_mbuf_refcnt_update(seg, extra);
}

}  // namespace

Worker::Worker(uint16_t id, const std::atomic<const Snapshot*>* snapshot,
               const std::atomic<Capture*>* captures, Bridge* bridge, Rcu* rcu, rte_mempool* pool,
               Handoffs* handoffs)
    : id_(id),
      snapshot_(snapshot),
      captures_(captures),
      bridge_(bridge),
      rcu_(rcu),
      pool_(pool),
      handoffs_(handoffs) {}

bool Worker::BackToIngress::Emit(const uint8_t* frame, uint32_t len) {
  if (w_->nemitted_ == 2 * kBurstSize) return false;
  rte_mbuf* m = rte_pktmbuf_alloc(w_->pool_);
  if (m == nullptr) return false;
  char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(len));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return false;
  }
  rte_memcpy(data, frame, len);
  w_->emitted_[w_->nemitted_++] = m;
  return true;
}

void Worker::Transmit(Port& port, rte_mbuf** pkts, uint16_t n) {
  uint32_t len[2 * kBurstSize];  // Tx frees the mbufs; ports send a prefix of the burst
  for (uint16_t i = 0; i < n; i++) len[i] = pkts[i]->pkt_len;
  DropReason why = DropReason::kNone;
  const uint16_t sent = port.Tx(id_, pkts, n, &why);
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < sent; i++) bytes += len[i];
  PortCounters& c = port.counters(id_);
  c.tx_packets.Add(sent);
  c.tx_bytes.Add(bytes);
  if (sent < n) c.Drop(why, n - sent);
  tx_packets_.Add(sent);
}

void Worker::SendEmitted(const Snapshot& snap, uint16_t in) {
  const uint16_t n = nemitted_;
  nemitted_ = 0;
  Transmit(*snap.ports[in].port, emitted_, n);
}

WorkerStats Worker::Stats() const {
  return WorkerStats{busy_cycles_.Get(), idle_cycles_.Get(), control_cycles_.Get(), rx_packets_.Get(), tx_packets_.Get(),
                     loops_.Get(), handed_in_.Get()};
}

void Worker::Run() {
  rcu_->Register(id_);
  rcu_->Online(id_);
  owner_.Back();
  while (!stop_.load(std::memory_order_acquire)) {
    uint64_t start = rte_rdtsc();
    if (owner_.Serve()) {
      const uint64_t served = rte_rdtsc();
      control_cycles_.Add(served - start);
      start = served;
    }
    const Snapshot* snap = snapshot_->load(std::memory_order_acquire);
    const uint64_t now_ns = TscToNs(start);
    uint32_t received = 0;
    for (uint16_t port : snap->polls[id_]) received += PollPort(*snap, port, now_ns);
    SendInjected(*snap, now_ns);
    const uint32_t handed = TakeHandoffs(*snap, now_ns);
    const uint64_t spent = rte_rdtsc() - start;
    rcu_->Quiescent(id_);
    loops_.Add(1);
    if (received + handed > 0) {
      busy_cycles_.Add(spent);
      rx_packets_.Add(received);
      idle_loops_ = 0;
      sleep_us_ = 1;
    } else {
      idle_cycles_.Add(spent);
      Idle();
    }
  }
  owner_.Away();
  rcu_->Offline(id_);
  rcu_->Unregister(id_);
}

void Worker::Idle() {
  if (++idle_loops_ < kSpinLoops) return;
  const uint64_t start = rte_rdtsc();
  rcu_->Offline(id_);
  owner_.Nap(sleep_us_);  // a control call wakes it: the next loop serves it
  rcu_->Online(id_);
  idle_cycles_.Add(rte_rdtsc() - start);
  if (sleep_us_ < kMaxSleepUs) sleep_us_ *= 2;
}

void Worker::Stage(uint16_t port, rte_mbuf* m, uint8_t slot) {
  if (staged_count_[port] == 0) touched_[ntouched_++] = port;
  staged_slot_[port][staged_count_[port]] = slot;
  staged_[port][staged_count_[port]++] = m;
}

uint32_t Worker::PollPort(const Snapshot& snap, uint16_t in, uint64_t now_ns) {
  const Snapshot::Entry& entry = snap.ports[in];
  rte_mbuf* pkts[kBurstSize];
  const uint16_t received = entry.port->Rx(pkts, kBurstSize);
  if (received == 0) return 0;

  PortCounters& rx = entry.port->counters(id_);
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < received; i++) bytes += pkts[i]->pkt_len;
  rx.rx_packets.Add(received);
  rx.rx_bytes.Add(bytes);
  const uint16_t n = entry.port->drop_tagged() ? DropTagged(pkts, received, rx) : received;
  if (n == 0) return received;

  FilterBatch batch;
  FillBatch(batch, Direction::kOut, id_, now_ns, pkts, n);
  batch.emit = &emitter_;
  for (uint16_t i = 0; i < n; i++) {
    scratch_[i].tag = 0;
    batch.scratch[i] = &scratch_[i];
  }
  entry.chain->Run(batch, captures_[in].load(std::memory_order_acquire));

  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    if (batch.verdict[i] != Verdict::kPass) {
      if (batch.verdict[i] == Verdict::kConsumed) {
        rx.consumed.Add(1);
      } else {
        rx.Drop(batch.reason[i]);
      }
      rte_pktmbuf_free(m);
      continue;
    }
    Forward(snap, in, m, static_cast<uint8_t>(i), now_s);
  }
  Flush(snap, in, now_ns);
  if (nemitted_ > 0) SendEmitted(snap, in);
  return received;
}

void Worker::Forward(const Snapshot& snap, uint16_t in, rte_mbuf* m, uint8_t slot, uint32_t now_s) {
  const Bridge::Decision d =
      bridge_->Forward(id_, in, rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, now_s);
  if (d.port >= 0) {
    if (snap.ports[d.port].port) {
      Stage(static_cast<uint16_t>(d.port), m, slot);
    } else {  // learned on a port that has just been removed
      snap.ports[in].port->counters(id_).Drop(DropReason::kPortDown);
      rte_pktmbuf_free(m);
    }
  } else if (d.port == Bridge::kFlood && snap.in_use.size() > 1) {
    AddRefs(m, static_cast<int16_t>(snap.in_use.size() - 2));
    for (uint16_t out : snap.in_use) {
      if (out != in) Stage(out, m, slot);
    }
  } else {
    if (d.port == Bridge::kDrop) snap.ports[in].port->counters(id_).Drop(d.reason);
    rte_pktmbuf_free(m);  // dropped, or flooded on a switch with no other port
  }
}

void Worker::SendInjected(const Snapshot& snap, uint64_t now_ns) {
  InjectedFrame f;
  while (injected_.Pop(&f)) {
    if (!snap.ports[f.port].port || f.len > sizeof f.data) continue;  // removed meanwhile
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) continue;
    char* data = rte_pktmbuf_append(m, f.len);
    if (data == nullptr) {
      rte_pktmbuf_free(m);
      continue;
    }
    std::memcpy(data, f.data, f.len);
    scratch_[0].tag = 0;
    Forward(snap, f.port, m, 0, static_cast<uint32_t>(now_ns / 1000000000ull));
    Flush(snap, f.port, now_ns);
  }
}

void Worker::Flush(const Snapshot& snap, uint16_t in, uint64_t now_ns) {
  for (uint16_t t = 0; t < ntouched_; t++) {
    const uint16_t out = touched_[t];
    rte_mbuf** pkts = staged_[out];
    const uint16_t n = staged_count_[out];
    staged_count_[out] = 0;
    if (snap.owner[out] != id_) {
      HandOff(snap, out, in, pkts, n);
      continue;
    }
    PacketScratch* scratch[kBurstSize];
    for (uint16_t i = 0; i < n; i++) scratch[i] = &scratch_[staged_slot_[out][i]];
    Deliver(snap, out, pkts, scratch, n, now_ns);
  }
  ntouched_ = 0;
}

void Worker::Deliver(const Snapshot& snap, uint16_t out, rte_mbuf** pkts, PacketScratch* const* scratch,
                     uint16_t n, uint64_t now_ns) {
  const Snapshot::Entry& entry = snap.ports[out];
  PortCounters& c = entry.port->counters(id_);
  FilterBatch batch;
  FillBatch(batch, Direction::kIn, id_, now_ns, pkts, n);
  batch.emit = &emitter_;
  for (uint16_t i = 0; i < n; i++) batch.scratch[i] = scratch[i];
  entry.chain->Run(batch, captures_[out].load(std::memory_order_acquire));
  uint16_t keep = 0;
  for (uint16_t i = 0; i < n; i++) {
    if (batch.verdict[i] == Verdict::kPass) {
      pkts[keep++] = pkts[i];
      continue;
    }
    if (batch.verdict[i] == Verdict::kConsumed) {
      c.consumed.Add(1);
    } else {
      c.Drop(batch.reason[i]);
    }
    rte_pktmbuf_free(pkts[i]);
  }
  if (keep > 0) Transmit(*entry.port, pkts, keep);
}

void Worker::HandOff(const Snapshot& snap, uint16_t out, uint16_t in, rte_mbuf** pkts, uint16_t n) {
  Handoffs::Ring& ring = handoffs_->ring(id_, snap.owner[out]);
  HandoffBurst* burst = ring.Reserve();
  if (burst == nullptr) {  // that worker is this far behind: its port's queue is full
    snap.ports[out].port->counters(id_).Drop(DropReason::kTxFull, n);
    rte_pktmbuf_free_bulk(pkts, n);
    return;
  }
  burst->port = out;
  burst->from = in;
  burst->port_uid = snap.ports[out].port->uid();
  burst->from_uid = snap.ports[in].port ? snap.ports[in].port->uid() : 0;
  burst->count = n;
  std::memcpy(burst->pkts, pkts, n * sizeof pkts[0]);
  ring.Publish();
}

uint32_t Worker::TakeHandoffs(const Snapshot& snap, uint64_t now_ns) {
  uint32_t taken = 0;
  for (unsigned from = 0; from < handoffs_->workers(); from++) {
    if (from == id_) continue;
    Handoffs::Ring& ring = handoffs_->ring(from, id_);
    while (const HandoffBurst* burst = ring.Front()) {
      rte_mbuf* pkts[kBurstSize];
      const uint16_t n = burst->count;
      std::memcpy(pkts, burst->pkts, n * sizeof pkts[0]);
      const uint16_t out = burst->port, in = burst->from;
      const bool out_alive = snap.ports[out].port && snap.ports[out].port->uid() == burst->port_uid;
      const bool in_alive = snap.ports[in].port && snap.ports[in].port->uid() == burst->from_uid;
      ring.Release();
      taken += n;
      if (!out_alive || snap.owner[out] != id_) {  // removed since it was sent
        rte_pktmbuf_free_bulk(pkts, n);
        continue;
      }
      PacketScratch* scratch[kBurstSize];
      for (uint16_t i = 0; i < n; i++) {
        handoff_scratch_[i].tag = 0;  // the sender's parse stays there: parsed again here
        scratch[i] = &handoff_scratch_[i];
      }
      Deliver(snap, out, pkts, scratch, n, now_ns);
      if (nemitted_ == 0) continue;
      if (in_alive) {
        SendEmitted(snap, in);
      } else {
        rte_pktmbuf_free_bulk(emitted_, nemitted_);
        nemitted_ = 0;
      }
    }
  }
  handed_in_.Add(taken);
  return taken;
}

}  // namespace palisade
