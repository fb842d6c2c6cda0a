#include "vswitch/switch.h"

#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <ctime>
#include <random>

#include "vswitch/clock.h"
#include "vswitch/uplink_port.h"
#include "vswitch/vhost_port.h"

namespace palisade {
namespace {

constexpr size_t kMaxPortName = 64;

Status ValidPortName(const std::string& name) {
  if (name.empty() || name.size() > kMaxPortName) {
    return Status::Invalid("port name must be 1-64 characters");
  }
  for (char c : name) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Status::Invalid("port name '" + name + "' may hold only letters, digits, '-', '_', '.'");
    }
  }
  return Status::Ok();
}

int WorkerMain(void* arg) {
  static_cast<Worker*>(arg)->Run();
  return 0;
}

}  // namespace

Switch::Switch(Options options) : options_(std::move(options)) {
  std::random_device rd;
  hash_seed_ = (uint64_t{rd()} << 32) | rd();
  boot_id_ = fw::BootId();
}

Status Switch::Create(Options options, std::unique_ptr<Switch>* out) {
  if (options.worker_lcores.empty()) return Status::Invalid("at least one worker is needed");
  std::unique_ptr<Switch> sw(new Switch(std::move(options)));
  const unsigned nworkers = static_cast<unsigned>(sw->options_.worker_lcores.size());
  sw->pool_ = rte_pktmbuf_pool_create("palisade_mbufs", sw->options_.mbufs, 256, 0,
                                      RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (sw->pool_ == nullptr) {
    return Status::Unavailable(std::string("cannot create the packet buffer pool: ") +
                               rte_strerror(rte_errno));
  }
  sw->rcu_ = std::make_unique<Rcu>(nworkers);
  // Packet log lines carry wall-clock time; events carry the switch's monotonic clock.
  timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  const int64_t wall_offset =
      int64_t{real.tv_sec} * 1000000000 + real.tv_nsec - static_cast<int64_t>(NowNs());
  sw->wall_offset_ns_ = wall_offset;
  sw->packet_log_ = std::make_unique<fw::PacketLog>(nworkers, wall_offset);
  Rcu* rcu = sw->rcu_.get();
  sw->bridge_ = std::make_unique<Bridge>(
      Bridge::Options{sw->options_.mac_table_size, sw->options_.mac_ageing_s, nworkers},
      [rcu](std::function<void()> fn) { rcu->Retire(std::move(fn)); });
  sw->handoffs_ = std::make_unique<Handoffs>(nworkers);
  for (unsigned w = 0; w < nworkers; w++) {
    sw->workers_.push_back(
        std::make_unique<Worker>(w, &sw->snapshot_, sw->captures_.data(), sw->bridge_.get(),
                                 sw->rcu_.get(), sw->pool_, sw->handoffs_.get()));
  }
  sw->Publish();
  *out = std::move(sw);
  return Status::Ok();
}

Switch::~Switch() {
  for (auto& w : workers_) w->Stop();
  if (started_) {
    for (unsigned lcore : options_.worker_lcores) rte_eal_wait_lcore(lcore);
  }
  // Workers are gone: ports and snapshots can go at once, in that order.
  ports_.clear();
  if (rcu_) {
    rcu_->Retire([old = snapshot_.exchange(nullptr)] { delete old; });
    rcu_->Reclaim(/*wait=*/true);
  }
  bridge_.reset();
  rcu_.reset();
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

Status Switch::Start() {
  for (size_t i = 0; i < workers_.size(); i++) {
    const unsigned lcore = options_.worker_lcores[i];
    if (rte_eal_remote_launch(WorkerMain, workers_[i].get(), lcore) != 0) {
      return Status::Unavailable("cannot start worker " + std::to_string(i) + " on lcore " +
                                 std::to_string(lcore));
    }
  }
  started_ = true;
  return Status::Ok();
}

uint32_t Switch::NowS() const { return static_cast<uint32_t>(NowNs() / 1000000000ull); }

void Switch::Publish() {
  auto* snap = new Snapshot;
  snap->generation = ++generation_;
  snap->polls.resize(workers_.size());
  for (const auto& [name, state] : ports_) {
    const uint16_t idx = state.port->index();
    snap->ports[idx] = Snapshot::Entry{state.port, state.chain};
    snap->in_use.push_back(idx);
    snap->polls[state.worker].push_back(idx);
    snap->owner[idx] = state.worker;
  }
  const Snapshot* old = snapshot_.exchange(snap, std::memory_order_acq_rel);
  if (old != nullptr) rcu_->Retire([old] { delete old; });
}

Status Switch::AddPort(const PortSpec& spec) {
  config_changes_++;
  if (Status s = ValidPortName(spec.name); !s.ok()) return s;
  if (ports_.count(spec.name)) return Status::Exists("port '" + spec.name + "' already exists");
  uint16_t index = 0;
  while (index < kMaxPorts && index_used_.test(index)) index++;
  if (index == kMaxPorts) {
    return Status::Unavailable("the switch has " + std::to_string(kMaxPorts) + " ports already");
  }

  const unsigned nworkers = static_cast<unsigned>(workers_.size());
  std::unique_ptr<Port> port;
  Status status =
      spec.kind == PortKind::kVhostUser
          ? VhostPort::Create(spec.name, index, nworkers, {spec.path, spec.client}, pool_,
                              rcu_.get(), &port)
          : UplinkPort::Create(spec.name, index, nworkers, spec.devargs, pool_, &port);
  if (!status.ok()) return status;
  port->set_drop_tagged(spec.kind == PortKind::kVhostUser && !spec.allow.vlan);

  // The least loaded worker polls the new port.
  std::vector<unsigned> load(nworkers, 0);
  for (const auto& [name, state] : ports_) load[state.worker]++;
  uint16_t worker = 0;
  for (unsigned w = 1; w < nworkers; w++) {
    if (load[w] < load[worker]) worker = static_cast<uint16_t>(w);
  }

  index_used_.set(index);
  bridge_->SetPortLive(index, true);
  PortState state;
  state.port = std::move(port);
  state.chain = std::make_shared<const IOChain>();
  state.spec = spec;
  state.worker = worker;
  ports_.emplace(spec.name, std::move(state));
  Publish();
  if (!spec.ips.empty()) ReserveAddresses();
  if (!spec.vm.empty()) RecompileVmSets();
  return Status::Ok();
}

Status Switch::RemovePort(const std::string& name) {
  config_changes_++;
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  const uint16_t index = it->second.port->index();
  const bool had_vm = !it->second.spec.vm.empty();
  bridge_->RemovePort(index);
  if (it->second.sfw) it->second.sfw->DiscardSegment();
  // Its capture ends (the grace period below covers it): the index may go to another port.
  for (auto& [id, c] : capture_states_) {
    if (c.active && c.index == index) {
      captures_[index].store(nullptr, std::memory_order_release);
      c.active = false;
    }
  }
  ports_.erase(it);
  ReserveAddresses();
  if (had_vm) RecompileVmSets();
  Publish();
  // Wait for the workers to let go of the old snapshot, which holds the last reference: the
  // port is torn down before we answer (its socket is gone, its name and path reusable). The
  // learning events it may still have queued are drained (and ignored: the port is no longer
  // live) before its index can be reused.
  rcu_->Reclaim(/*wait=*/true);
  bridge_->Poll(NowS());
  // Its log lines are written under its index before the index is free for another port.
  packet_log_->Drain(options_.packet_log, NowNs());
  packet_log_->Forget(index);
  index_used_.reset(index);
  return Status::Ok();
}

Status Switch::AttachFilter(const std::string& port, const FilterSpec& spec) {
  config_changes_++;
  auto it = ports_.find(port);
  if (it == ports_.end()) return Status::NotFound("no port '" + port + "'");
  if (spec.slot == 0 || spec.slot > 15) return Status::Invalid("slot must be 1-15");
  std::shared_ptr<Filter> filter;
  if (Status s = MakeFilter(it->second, spec, &filter); !s.ok()) return s;
  it->second.chain = it->second.chain->With(FilterSlot{spec.slot, spec.policy, std::move(filter)});
  Publish();
  if (spec.agent == "swsec") {
    ReserveAddresses();
    RecompileVmSets();
  }
  return Status::Ok();
}

Status Switch::DetachFilter(const std::string& port, uint8_t slot) {
  config_changes_++;
  auto it = ports_.find(port);
  if (it == ports_.end()) return Status::NotFound("no port '" + port + "'");
  if (it->second.chain->Find(slot) == nullptr) {
    return Status::NotFound("port '" + port + "' has no slot " + std::to_string(slot));
  }
  const FilterSlot* old = it->second.chain->Find(slot);
  if (old->filter && old->filter == it->second.sfw) {
    it->second.sfw->DiscardSegment();
    it->second.sfw.reset();
  }
  if (old->filter && old->filter == it->second.swsec) it->second.swsec.reset();
  it->second.chain = it->second.chain->Without(slot);
  Publish();
  return Status::Ok();
}

Status Switch::SetMacAgeing(uint32_t seconds) {
  config_changes_++;
  if (seconds < 1 || seconds > 1000000) return Status::Invalid("MAC ageing must be 1-1000000 s");
  bridge_->set_ageing_s(seconds);
  return Status::Ok();
}

void Switch::Tick() {
  bridge_->Poll(NowS());
  FirewallTick(NowNs());
  rcu_->Reclaim();
}

PortInfo Switch::Describe(const PortState& state) const {
  const Port& port = *state.port;
  PortInfo info{port.name(), port.index(), state.spec, port.link_up(), port.queue_pairs(),
                state.worker, port.Totals(), {}, state.cluster_revision};
  for (const FilterSlot& slot : state.chain->slots()) {
    SlotInfo s{slot.slot, "", "", slot.policy, {}};
    if (slot.filter) {
      s.agent = std::string(slot.filter->agent());
      if (auto* counting = dynamic_cast<const CountingFilter*>(slot.filter.get())) {
        s.counts = counting->totals();
      }
    }
    s.name = "nic-" + std::to_string(port.index()) + "-" + port.name() + "-" +
             (s.agent.empty() ? std::string("empty") : s.agent) + "." + std::to_string(slot.slot);
    info.slots.push_back(std::move(s));
  }
  return info;
}

std::vector<PortInfo> Switch::Ports() const {
  std::vector<PortInfo> out;
  for (const auto& [name, state] : ports_) out.push_back(Describe(state));
  return out;
}

Status Switch::GetPort(const std::string& name, PortInfo* info) const {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  *info = Describe(it->second);
  return Status::Ok();
}

std::vector<WorkerStats> Switch::Workers() const {
  std::vector<WorkerStats> out;
  for (const auto& w : workers_) out.push_back(w->Stats());
  return out;
}

std::vector<MacInfo> Switch::Macs() const {
  std::vector<std::string> names(kMaxPorts);
  for (const auto& [name, state] : ports_) names[state.port->index()] = name;
  const uint32_t now = NowS();
  std::vector<MacInfo> out;
  for (const MacTable::Entry& e : bridge_->Dump()) {
    out.push_back(MacInfo{e.mac, names[e.port], now > e.last_seen_s ? now - e.last_seen_s : 0});
  }
  return out;
}

}  // namespace palisade
