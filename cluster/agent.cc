#include "cluster/agent.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>

#include <capnp/compat/json.h>
#include <capnp/message.h>

#include "cluster/intent.capnp.h"
#include "cluster/keys.h"
#include "cluster/snapshot.h"
#include "common/utc_time.h"

namespace palisade::cluster {
namespace {

constexpr auto kBackoffMin = std::chrono::milliseconds(250);
constexpr auto kBackoffMax = std::chrono::milliseconds(8000);

}  // namespace

ClusterAgent::ClusterAgent(AgentOptions options, OnUpdate on_update)
    : options_(std::move(options)), on_update_(std::move(on_update)) {}

Status ClusterAgent::Start(AgentOptions options, OnUpdate on_update, std::unique_ptr<ClusterAgent>* out) {
  if (!ValidName(options.host)) {
    return Status::Invalid("'" + options.host + "' is not a host name (letters, digits, . _ -)");
  }
  if (options.lease_ttl_s < 2) return Status::Invalid("the host lease must last at least 2 s");
  std::unique_ptr<ClusterAgent> agent(new ClusterAgent(std::move(options), std::move(on_update)));
  std::unique_ptr<EtcdClient> check;  // the endpoints are usable
  if (Status s = EtcdClient::Connect(agent->options_.etcd, &check); !s.ok()) return s;
  if (!agent->options_.snapshot_path.empty() && access(agent->options_.snapshot_path.c_str(), F_OK) == 0) {
    if (Status s = agent->LoadSnapshot(); !s.ok()) return s;
    agent->Emit();
  }
  agent->watch_thread_ = std::thread([a = agent.get()] { a->WatchLoop(); });
  if (!agent->options_.snapshot_path.empty()) {
    agent->snapshot_thread_ = std::thread([a = agent.get()] { a->SnapshotLoop(); });
  }
  if (agent->options_.publish) agent->publish_thread_ = std::thread([a = agent.get()] { a->PublishLoop(); });
  *out = std::move(agent);
  return Status::Ok();
}

ClusterAgent::~ClusterAgent() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    if (watch_) watch_->Cancel();
    if (keepalive_) keepalive_->Cancel();
  }
  cv_.notify_all();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (publish_thread_.joinable()) publish_thread_.join();
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  if (!options_.snapshot_path.empty()) SaveSnapshot();  // the last state, whatever was pending
}

void ClusterAgent::Publish(std::vector<EndpointInfo> local) {
  bool vms_changed;
  {
    std::lock_guard lock(mu_);
    auto names = [](const std::vector<EndpointInfo>& v) {
      std::vector<std::string> n;
      for (const EndpointInfo& e : v) n.push_back(e.vm);
      return n;
    };
    if (local == local_) return;
    vms_changed = names(local) != names(local_);
    local_ = std::move(local);
    local_changed_ = true;
  }
  cv_.notify_all();
  if (vms_changed) Emit();  // a VM new here needs its rules at once
}

AgentStatus ClusterAgent::status() const {
  std::lock_guard lock(mu_);
  AgentStatus s = status_;
  if (last_contact_ != std::chrono::steady_clock::time_point{}) {
    s.last_contact_ms_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - last_contact_).count();
  }
  return s;
}

bool ClusterAgent::Wait(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_; });
  return !stop_;
}

std::chrono::milliseconds ClusterAgent::Backoff(int attempt) {
  thread_local std::mt19937 rng{std::random_device{}()};
  auto base = kBackoffMin * (1 << std::min(attempt, 5));
  if (base > kBackoffMax) base = kBackoffMax;
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  return std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(base.count()) * jitter(rng)));
}

void ClusterAgent::Contact() {
  std::lock_guard lock(mu_);
  last_contact_ = std::chrono::steady_clock::now();
  status_.connected = true;
  status_.error.clear();
}

void ClusterAgent::Fail(const Status& s) {
  std::lock_guard lock(mu_);
  status_.connected = false;
  status_.error = s.message();
}

Status ClusterAgent::Fresh(std::unique_ptr<EtcdClient>* client) {
  client->reset();
  return EtcdClient::Connect(options_.etcd, client);
}

void ClusterAgent::WatchLoop() {
  int attempt = 0;
  for (;;) {
    bool listed = false;  // a list succeeded: the backoff starts over
    bool compacted = false;
    Status s = Status::Ok();
    {
      // A fresh view, built page by page outside the lock; it replaces the cache whole, so
      // what etcd no longer has (deletes missed while away) goes too.
      ClusterView fresh;
      std::map<std::string, std::string> fresh_kvs;
      const bool keep = !options_.snapshot_path.empty();
      int64_t revision = 0;
      s = Fresh(&watch_etcd_);
      if (s.ok()) {
        s = watch_etcd_->RangeAll(kWatchBegin, kWatchEnd, [&](std::vector<KeyValue>& page) {
          for (KeyValue& kv : page) {
            (void)fresh.Put(kv.key, kv.value);  // an unreadable value counts as absent
            if (keep) fresh_kvs[std::move(kv.key)] = std::move(kv.value);
          }
        }, &revision);
      }
      if (s.ok()) {
        listed = true;
        Contact();
        {
          std::lock_guard lock(view_mu_);
          fresh.set_revision(revision);
          view_ = std::move(fresh);
          kvs_ = std::move(fresh_kvs);
          intent_changed_ = true;
          ForgetResolved();
        }
        {
          std::lock_guard lock(mu_);
          status_.relists++;
          status_.revision = revision;
        }
        Emit();
        SnapshotChanged();
        s = Watch(revision + 1, &compacted);
      }
    }
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    Fail(s);
    {
      std::lock_guard lock(mu_);
      status_.reconnects++;
    }
    if (listed) attempt = 0;
    if (compacted) continue;  // relist at once, at a fixed revision
    if (!Wait(Backoff(attempt++))) return;
  }
}

Status ClusterAgent::Watch(int64_t from, bool* compacted) {
  std::unique_ptr<EtcdClient::Watch> w;
  if (Status s = watch_etcd_->StartWatch(kWatchBegin, kWatchEnd, from, &w); !s.ok()) return s;
  EtcdClient::Watch* watch = w.get();
  {
    std::lock_guard lock(mu_);
    if (stop_) return Status::Unavailable("stopping");
    watch_ = std::move(w);
  }
  Status result = Status::Ok();
  for (;;) {
    WatchBatch b;
    if (Status s = watch->Next(&b); !s.ok()) {
      result = s;
      break;
    }
    Contact();
    if (b.canceled) {
      *compacted = b.compact_revision > 0;
      result = *compacted
                   ? Status::Unavailable("the watch's start revision was compacted (now " +
                                         std::to_string(b.compact_revision) + "): relisting")
                   : Status::Unavailable("etcd canceled the watch: " + b.cancel_reason);
      break;
    }
    int64_t revision = 0;
    const bool keep = !options_.snapshot_path.empty();
    {
      std::lock_guard lock(view_mu_);
      for (const WatchEvent& e : b.events) {
        // A policy's change renders again only the local VMs it applied to, or applies to now
        // (unless every one renders again anyway); a change of groups or labels may move any
        // VM, so every one is rendered again.
        const bool policy = e.kv.key.rfind(kPolicies, 0) == 0;
        const bool mark = policy && !intent_changed_;  // local_by_label_ holds
        const std::string name = policy ? e.kv.key.substr(kPolicies.size()) : "";
        ClusterView::Targets targets;  // before the change, then after
        if (policy) {
          if (mark) view_.AddTargets(name, &targets);
        } else if (std::string vm, host; ParseEndpointKey(e.kv.key, &vm, &host)) {
          // A VM's addresses changed: only the names that stand for it are resolved again
          // (which groups hold a VM is intent, not endpoints).
          forgot_ |= vm_addresses_.erase(vm) > 0;
          forgot_ |= std::erase_if(group_addresses_, [&](const auto& g) { return view_.InGroup(vm, g.first); }) > 0;
        } else {
          intent_changed_ |= e.kv.key.starts_with(kIntent);
          ForgetResolved();
        }
        if (e.deleted) {
          view_.Delete(e.kv.key);
          if (keep) kvs_.erase(e.kv.key);
        } else {
          (void)view_.Put(e.kv.key, e.kv.value);
          if (keep) kvs_[e.kv.key] = e.kv.value;
        }
        if (mark) {
          view_.AddTargets(name, &targets);
          for (const std::string& vm : targets.vms) {
            if (auto it = rendered_.find(vm); it != rendered_.end()) it->second.stale = stale_ = true;
          }
          for (const auto& [key, values] : targets.labels) {
            for (const std::string& value : values) {
              auto it = local_by_label_.find(key + "=" + value);
              if (it == local_by_label_.end()) continue;
              for (Rendered* r : it->second) r->stale = stale_ = true;
            }
          }
        }
        revision = std::max(revision, e.kv.mod_revision);
      }
      if (b.events.empty()) revision = b.revision;  // progress: nothing changed up to here
      if (revision > view_.revision()) view_.set_revision(revision);
      revision = view_.revision();
    }
    {
      std::lock_guard lock(mu_);
      status_.revision = revision;
    }
    if (!b.events.empty()) {
      Emit();
      SnapshotChanged();
    }
  }
  std::lock_guard lock(mu_);
  watch_.reset();
  return result;
}

void ClusterAgent::Emit() {
  std::vector<std::string> local;
  {
    std::lock_guard lock(mu_);
    for (const EndpointInfo& e : local_) local.push_back(e.vm);
  }
  auto u = std::make_shared<ClusterUpdate>();
  {
    std::lock_guard lock(view_mu_);
    u->revision = view_.revision();
    // Rule files depend on the intent alone: a change of endpoints (addresses) renders nothing
    // again, it only resolves the names the local tables use.
    if (intent_changed_ || stale_ || local != local_vms_ || !local_out_) {
      if (intent_changed_) rendered_.clear();
      intent_changed_ = stale_ = false;
      auto out = std::make_shared<LocalRules>();
      std::map<std::string, Rendered> now;
      used_vms_.clear();
      used_groups_.clear();
      ClusterView::RenderMemo memo;
      for (const std::string& vm : local) {
        auto it = rendered_.find(vm);
        Rendered r;
        if (it != rendered_.end() && !it->second.stale) {
          r = std::move(it->second);
        } else {
          fw::RuleFile file;
          if (Status s = view_.Render(vm, &r.text, &file, &memo); !s.ok()) r.error = s.message();
          for (const fw::AddrSet& set : file.addrsets) {
            r.vms.insert(set.vms.begin(), set.vms.end());
            r.groups.insert(set.groups.begin(), set.groups.end());
          }
        }
        if (!r.error.empty()) {
          out->errors[vm] = r.error;
        } else {
          out->rules[vm] = r.text;
        }
        used_vms_.insert(r.vms.begin(), r.vms.end());
        used_groups_.insert(r.groups.begin(), r.groups.end());
        now[vm] = std::move(r);
      }
      rendered_ = std::move(now);  // VMs no longer here are forgotten
      local_by_label_.clear();
      for (auto& [vm, r] : rendered_) {
        if (const ClusterView::Labels* labels = view_.LabelsOf(vm)) {
          for (const auto& [key, value] : *labels) local_by_label_[key + "=" + value].push_back(&r);
        }
      }
      local_vms_ = std::move(local);
      local_out_ = std::move(out);
      forgot_ = true;  // the names used may have changed
    }
    // Only what the local tables name is resolved: a host needs no other VM's addresses.
    if (forgot_ || !resolved_out_) {
      forgot_ = false;
      auto out = std::make_shared<ResolvedNames>();
      for (const std::string& vm : used_vms_) {
        auto [it, fresh] = vm_addresses_.try_emplace(vm);
        if (fresh) it->second = view_.VmAddresses(vm);
        out->vms[vm] = it->second;
      }
      for (const std::string& g : used_groups_) {
        auto [it, fresh] = group_addresses_.try_emplace(g);
        if (fresh) it->second = view_.GroupAddresses(g);
        out->groups[g] = it->second;
      }
      resolved_out_ = std::move(out);
    }
    u->local = local_out_;
    u->resolved = resolved_out_;
  }
  {
    std::lock_guard lock(mu_);
    status_.updates++;
  }
  on_update_(std::move(u));
}

void ClusterAgent::PublishLoop() {
  int attempt = 0;
  for (;;) {
    int64_t lease = 0;
    bool expired = false;
    Status s = PublishOnce(&lease, &expired);
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (expired) {
      attempt = 0;
      continue;  // the lease is gone: a new one, and every key written again, at once
    }
    if (!Wait(Backoff(attempt++))) return;
  }
}

// One lease's life: grant, write the host's keys, then renew and follow local changes until
// something fails.
Status ClusterAgent::PublishOnce(int64_t* lease, bool* expired) {
  if (Status s = Fresh(&publish_etcd_); !s.ok()) return s;
  EtcdClient* etcd = publish_etcd_.get();
  if (Status s = etcd->LeaseGrant(options_.lease_ttl_s, lease); !s.ok()) return s;
  std::map<std::string, EndpointInfo> published;  // key -> what etcd has
  uint64_t generation = 0;
  const std::string started = UtcNowText();
  auto sync = [&]() -> Status {
    std::vector<EndpointInfo> local;
    {
      std::lock_guard lock(mu_);
      local = local_;
      local_changed_ = false;
    }
    std::map<std::string, EndpointInfo> want;
    for (EndpointInfo& e : local) {
      e.host = options_.host;
      want[EndpointKey(e.vm, options_.host)] = e;
    }
    for (auto& [key, e] : want) {
      auto old = published.find(key);
      if (old != published.end() && old->second.addresses == e.addresses && old->second.macs == e.macs &&
          old->second.state == e.state) {
        e.generation = old->second.generation;
        continue;
      }
      e.generation = ++generation;
      if (Status s = etcd->Put(key, EncodeEndpoint(e), *lease); !s.ok()) return s;
    }
    for (const auto& [key, e] : published) {
      if (!want.count(key)) {
        if (Status s = etcd->Delete(key); !s.ok()) return s;
      }
    }
    published = std::move(want);
    capnp::MallocMessageBuilder m;
    auto host = m.initRoot<HostStatus>();
    host.setStarted(started);
    host.setVms(static_cast<uint32_t>(published.size()));
    {
      std::lock_guard lock(mu_);
      host.setRevision(status_.revision);
      status_.lease = *lease;
      status_.published = published.size();
    }
    capnp::JsonCodec codec;
    return etcd->Put(std::string(kHosts) + options_.host, std::string(codec.encode(host.asReader()).cStr()), *lease);
  };
  if (Status s = sync(); !s.ok()) return s;
  std::unique_ptr<EtcdClient::KeepAlive> k;
  if (Status s = etcd->StartKeepAlive(*lease, &k); !s.ok()) return s;
  EtcdClient::KeepAlive* keepalive = k.get();
  {
    std::lock_guard lock(mu_);
    if (stop_) return Status::Unavailable("stopping");
    keepalive_ = std::move(k);
  }
  auto done = [this](Status s) {
    std::lock_guard lock(mu_);
    keepalive_.reset();
    return s;
  };
  const auto period = std::chrono::milliseconds(options_.lease_ttl_s * 1000 / 3);
  auto next_renew = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_renew, [this] { return stop_ || local_changed_; });
      if (stop_) break;
    }
    if (std::chrono::steady_clock::now() >= next_renew) {
      int64_t ttl = 0;
      if (Status s = keepalive->Renew(&ttl); !s.ok()) return done(s);
      if (ttl <= 0) {
        *expired = true;
        return done(Status::Unavailable("the host's lease expired"));
      }
      {
        // etcd answers: the view is as fresh as the watch, which has said nothing new.
        std::lock_guard lock(mu_);
        last_contact_ = std::chrono::steady_clock::now();
      }
      next_renew = std::chrono::steady_clock::now() + period;
    }
    bool changed;
    {
      std::lock_guard lock(mu_);
      changed = local_changed_;
    }
    if (changed) {
      if (Status s = sync(); !s.ok()) return done(s);
    }
  }
  return done(Status::Unavailable("stopping"));
}

void ClusterAgent::SnapshotChanged() {
  {
    std::lock_guard lock(mu_);
    snapshot_stale_ = true;
  }
  cv_.notify_all();
}

void ClusterAgent::SnapshotLoop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || snapshot_stale_; });
      if (stop_) return;  // the destructor writes the last state
      snapshot_stale_ = false;
    }
    const auto start = std::chrono::steady_clock::now();
    SaveSnapshot();
    // As long as the write took: a burst of changes coalesces, and the disk gets at most half
    // of this thread's time.
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (!Wait(std::clamp(took, std::chrono::milliseconds(10), std::chrono::milliseconds(1000)))) return;
  }
}

void ClusterAgent::SaveSnapshot() {
  int64_t revision;
  std::map<std::string, std::string> kvs;
  {
    std::lock_guard lock(view_mu_);  // a copy: the watch thread goes on while the disk writes
    revision = view_.revision();
    kvs = kvs_;
  }
  const Status s = WriteSnapshot(options_.snapshot_path, revision, kvs);
  std::lock_guard lock(mu_);
  if (s.ok()) {
    status_.snapshot_revision = revision;
    status_.snapshot_error.clear();
  } else {
    status_.snapshot_error = s.message();  // the previous snapshot stays, whole
  }
}

Status ClusterAgent::LoadSnapshot() {
  int64_t revision = 0;
  std::map<std::string, std::string> kvs;
  if (Status s = ReadSnapshot(options_.snapshot_path, &revision, &kvs); !s.ok()) return s;
  std::lock_guard lock(view_mu_);
  for (const auto& [k, v] : kvs) (void)view_.Put(k, v);  // an unreadable value counts as absent
  ForgetResolved();
  view_.set_revision(revision);
  kvs_ = std::move(kvs);
  std::lock_guard status_lock(mu_);
  status_.revision = status_.snapshot_revision = revision;
  return Status::Ok();
}

}  // namespace palisade::cluster
