// EtcdClient: etcd's v3 API over gRPC C++ (the KV, Watch and Lease services), as the cluster
// agent and palisadectl use it. One channel to the cluster's members (ENDPOINTS: host:port or
// http(s)://host:port, comma-separated; gRPC fails over between them), with keepalive pings so
// that a half-open connection is noticed within seconds, and TLS when a CA is given.
//
// Every call has a deadline (options.timeout_ms) and fails with Unavailable when no member
// answers in time, or with a message naming what etcd refused.
//
// Thread-safety: calls may come from several threads (gRPC's channel and stubs are
// thread-safe); a Watch or a KeepAlive belongs to one thread, except Cancel().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace palisade::cluster {

struct EtcdOptions {
  std::string endpoints;
  // TLS when any is given or an endpoint says https:// (the system's roots without ca_pem);
  // the client certificate is optional.
  std::string cert_pem, key_pem, ca_pem;
  int timeout_ms = 5000;
  int keepalive_ms = 5000;  // ping interval; a missing answer for as long drops the connection
};

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
};

// What one watch response brought: the events of whole revisions, or the end of the watch.
struct WatchBatch {
  int64_t revision = 0;            // the store's revision when sent
  std::vector<WatchEvent> events;
  bool canceled = false;
  int64_t compact_revision = 0;    // canceled because the start revision was compacted away
  std::string cancel_reason;
};

class EtcdClient {
 public:
  static Status Connect(const EtcdOptions& options, std::unique_ptr<EtcdClient>* out);
  ~EtcdClient();

  // [key, range_end) (range_end empty: the key alone) at `at_revision` (0: the latest), at
  // most `limit` keys (0: all); *more says whether keys remain past the last one returned.
  Status Range(std::string_view key, std::string_view range_end, std::vector<KeyValue>* out,
               int64_t* revision, int64_t at_revision = 0, int64_t limit = 0, bool* more = nullptr);
  // All of [key, range_end) at one revision, in pages (a relist of a large range), each handed
  // to `page` as it arrives, so that only one page is held at a time (after a failure, the
  // pages seen are not the whole range); or collected into `out`.
  Status RangeAll(std::string_view key, std::string_view range_end,
                  const std::function<void(std::vector<KeyValue>& page)>& page, int64_t* revision);
  Status RangeAll(std::string_view key, std::string_view range_end, std::vector<KeyValue>* out,
                  int64_t* revision);
  Status Put(std::string_view key, std::string_view value, int64_t lease = 0);
  Status Delete(std::string_view key, std::string_view range_end = {}, int64_t* deleted = nullptr);
  // One transaction: if every (key, mod_revision) in `expect` still holds (0: the key is
  // absent), puts `puts` and deletes `deletes`; *applied says whether it did.
  Status Txn(const std::vector<std::pair<std::string, int64_t>>& expect,
             const std::vector<std::pair<std::string, std::string>>& puts,
             const std::vector<std::string>& deletes, bool* applied);
  Status LeaseGrant(int64_t ttl_s, int64_t* id);

  class Watch {
   public:
    virtual ~Watch() = default;
    // Blocks for the next response. Fails when the connection breaks (then start again).
    virtual Status Next(WatchBatch* out) = 0;
    virtual void Cancel() = 0;  // from any thread: Next returns
  };
  // Watches [key, range_end) from start_revision, with progress notifications.
  Status StartWatch(std::string_view key, std::string_view range_end, int64_t start_revision,
                    std::unique_ptr<Watch>* out);

  class KeepAlive {
   public:
    virtual ~KeepAlive() = default;
    // Renews the lease once; *ttl_s is what it has left (0: it expired and is gone).
    virtual Status Renew(int64_t* ttl_s) = 0;
    virtual void Cancel() = 0;
  };
  Status StartKeepAlive(int64_t lease, std::unique_ptr<KeepAlive>* out);

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace palisade::cluster
