// ClusterAgent: one switch's member of the cluster. On its own threads it keeps a ClusterView
// of etcd current and publishes this host's VMs, and hands each new state to the switch as a
// ClusterUpdate (whole revisions only: a transaction is never seen half-applied).
//
// Watching: list the watched range, then watch from the list's revision + 1. A broken
// connection is retried with exponential backoff and jitter (0.25 s doubling to 8 s, each wait
// 50-150% of that), never a relist storm; a watch whose start revision was compacted away
// relists at a fixed revision and replaces the cache, deletes included. gRPC keepalive pings
// notice a half-open connection within a few seconds. Meanwhile the switch keeps enforcing
// what it has, and status() says since when etcd has not answered.
//
// Publishing: a lease of `lease_ttl_s` for this host, renewed every third of it; the host's
// status and one endpoint key per local VM under it. A lease found expired (etcd forgot the
// host, or an outage outlasted it) is granted anew and every key written again at once.
//
// Snapshot: the view is saved (atomically) to `snapshot_path` by a thread of its own, so the
// watch thread never waits for the disk. A change is written at once unless a write is under
// way; changes meanwhile go into the next write, which waits as long as the last one took
// (10 ms to 1 s): the disk gets at most half of that thread's time, and a crash loses at most
// the changes of the last write or two. status() says which revision is on disk. A start reads
// it back before anything else, so a switch restarted during an outage enforces the last
// policy it had before it forwards a packet.
//
// Thread-safety: Publish() and status() from any thread; the update callback runs on the
// agent's watch thread (hand its work to the switch's own loop).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_client.h"
#include "cluster/view.h"
#include "common/status.h"

namespace palisade::cluster {

struct AgentOptions {
  EtcdOptions etcd;
  std::string host;
  int64_t lease_ttl_s = 10;
  std::string snapshot_path;  // empty: none
  bool publish = true;        // false: the host's keys are written elsewhere (simulated hosts)
};

// What the switch applies, at one revision: the rule files of its VMs, and the addresses of
// the names their tables use. Each half is shared with the previous update while it is
// unchanged (an address change renders no rule file; a policy of other hosts' VMs changes
// neither half), so that a host of many VMs copies nothing for a change that is not its own.
struct LocalRules {
  std::map<std::string, std::string> rules;   // local VM -> rule file text ("" : no policy)
  std::map<std::string, std::string> errors;  // local VM -> why its policies do not merge
};
struct ResolvedNames {  // the `vm NAME` and `group NAME` members of the local tables
  std::map<std::string, std::vector<fw::IpAddr>> vms;
  std::map<std::string, std::vector<fw::IpPrefix>> groups;
};
struct ClusterUpdate {
  int64_t revision = 0;
  std::shared_ptr<const LocalRules> local;
  std::shared_ptr<const ResolvedNames> resolved;
};

struct AgentStatus {
  bool connected = false;
  int64_t revision = 0;
  int64_t last_contact_ms_ago = -1;  // -1: never
  std::string error;                 // the last failure, while not connected
  uint64_t relists = 0, reconnects = 0, updates = 0;
  int64_t lease = 0;
  size_t published = 0;
  int64_t snapshot_revision = 0;  // the revision on disk (0: none yet)
  std::string snapshot_error;     // the last write's failure, until a write succeeds
};

class ClusterAgent {
 public:
  using OnUpdate = std::function<void(std::shared_ptr<const ClusterUpdate>)>;

  // Reads the snapshot (calling on_update with it before returning, when there is one), then
  // starts the threads. Fails only for bad options or an unreadable snapshot.
  static Status Start(AgentOptions options, OnUpdate on_update, std::unique_ptr<ClusterAgent>* out);
  ~ClusterAgent();  // stops the threads; the host's keys expire with its lease

  // The VMs this host runs now (replacing what was published before).
  void Publish(std::vector<EndpointInfo> local);
  AgentStatus status() const;
  const std::string& host() const { return options_.host; }
  const std::string& endpoints() const { return options_.etcd.endpoints; }
  const std::string& snapshot_path() const { return options_.snapshot_path; }

 private:
  explicit ClusterAgent(AgentOptions options, OnUpdate on_update);
  void WatchLoop();
  void PublishLoop();
  // Until the watch ends; *compacted: because its start revision was compacted away.
  Status Watch(int64_t from, bool* compacted);
  Status Fresh(std::unique_ptr<EtcdClient>* client);  // a new channel
  // One lease's life; *expired: it ended because etcd had let the lease expire.
  Status PublishOnce(int64_t* lease, bool* expired);
  void Emit();
  void SnapshotLoop();
  void SnapshotChanged();  // the view changed: the snapshot thread writes it
  void SaveSnapshot();
  Status LoadSnapshot();
  bool Wait(std::chrono::milliseconds d);  // false once stopping
  std::chrono::milliseconds Backoff(int attempt);
  void Contact();
  void Fail(const Status& s);

  AgentOptions options_;
  OnUpdate on_update_;
  // Each thread has its own channel, made afresh after a failure: a channel that never
  // reached etcd (a start during an outage) was seen to stay down after etcd came back.
  std::unique_ptr<EtcdClient> watch_etcd_;    // watch thread only
  std::unique_ptr<EtcdClient> publish_etcd_;  // publish thread only

  // Changed on the watch thread, read by Emit on whichever thread publishes:
  std::mutex view_mu_;
  ClusterView view_;                        // guarded by view_mu_
  // Guarded by view_mu_: the watched range as etcd has it, kept only for a snapshot.
  std::map<std::string, std::string> kvs_;
  struct Rendered {
    std::string text, error;
    std::set<std::string> vms, groups;  // the dynamic members its address sets name
    bool stale = false;                 // a policy that applied, or applies now, changed
  };
  std::map<std::string, Rendered> rendered_;  // guarded by view_mu_: local VM -> its rule file
  // Guarded by view_mu_: "KEY=VALUE" -> the local VMs so labelled when they were rendered (a
  // change of labels renders every VM again), so that a policy's change finds the VMs it
  // concerns without looking at the others.
  std::map<std::string, std::vector<Rendered*>> local_by_label_;
  bool intent_changed_ = true;                // guarded by view_mu_: renders are stale
  bool stale_ = false;                        // guarded by view_mu_: some render is
  // Guarded by view_mu_: names the local tables use, resolved; kept while only policies
  // change (a policy's change moves no address), a VM's endpoint change forgets what names
  // that VM, any other change all of them.
  std::map<std::string, std::vector<fw::IpAddr>> vm_addresses_;
  std::map<std::string, std::vector<fw::IpPrefix>> group_addresses_;
  bool forgot_ = true;  // guarded by view_mu_: some of them were forgotten since the last Emit
  void ForgetResolved() {
    vm_addresses_.clear();
    group_addresses_.clear();
    forgot_ = true;
  }
  // Guarded by view_mu_: the last update's halves, handed on while unchanged, the local VMs
  // they were rendered for, and the names their tables use.
  std::shared_ptr<const LocalRules> local_out_;
  std::shared_ptr<const ResolvedNames> resolved_out_;
  std::vector<std::string> local_vms_;
  std::set<std::string> used_vms_, used_groups_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::unique_ptr<EtcdClient::Watch> watch_;          // guarded by mu_ (for Cancel)
  std::unique_ptr<EtcdClient::KeepAlive> keepalive_;  // guarded by mu_ (for Cancel)
  std::vector<EndpointInfo> local_;                   // guarded by mu_
  bool local_changed_ = false;                        // guarded by mu_
  AgentStatus status_;                                // guarded by mu_
  std::chrono::steady_clock::time_point last_contact_{};  // guarded by mu_
  bool snapshot_stale_ = false;                           // guarded by mu_

  std::thread watch_thread_, publish_thread_, snapshot_thread_;
};

}  // namespace palisade::cluster
