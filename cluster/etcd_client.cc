#include "cluster/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <mutex>

#include "cluster/etcd_api.h"

namespace palisade::cluster {
namespace {

namespace pb = ::etcdserverpb;

Status FromGrpc(const grpc::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string message = "etcd " + std::string(what) + ": " + s.error_message();
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE && s.error_message().find("handshake") != std::string::npos) {
    message += " (the TLS handshake failed: does etcd serve TLS, and accept this client's certificate "
               "from --etcd-cert/--etcd-key, signed by a CA it trusts?)";
  }
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED: return Status::Unavailable(message);
    default: return Status::Invalid(message);
  }
}

// "http://10.0.0.1:2379,10.0.0.2:2379" -> a gRPC target over every member.
std::string Target(const std::string& endpoints) {
  std::vector<std::string> hosts;
  bool literal = true;
  size_t pos = 0;
  while (pos <= endpoints.size()) {
    size_t comma = endpoints.find(',', pos);
    if (comma == std::string::npos) comma = endpoints.size();
    std::string e = endpoints.substr(pos, comma - pos);
    for (std::string_view scheme : {"http://", "https://"}) {
      if (e.rfind(scheme, 0) == 0) e = e.substr(scheme.size());
    }
    while (!e.empty() && e.back() == '/') e.pop_back();
    if (!e.empty()) {
      const std::string host = e.substr(0, e.rfind(':'));
      literal &= !host.empty() && host.find_first_not_of("0123456789.") == std::string::npos;
      hosts.push_back(e);
    }
    pos = comma + 1;
  }
  if (hosts.empty()) return "";
  if (!literal) return "dns:///" + hosts[0];  // one name; DNS may give several members
  std::string target = "ipv4:";
  for (size_t i = 0; i < hosts.size(); i++) target += (i ? "," : "") + hosts[i];
  return target;
}

}  // namespace

struct EtcdClient::Impl {
  EtcdOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;

  void Deadline(grpc::ClientContext* c) const {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options.timeout_ms));
  }
};

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

Status EtcdClient::Connect(const EtcdOptions& options, std::unique_ptr<EtcdClient>* out) {
  const std::string target = Target(options.endpoints);
  if (target.empty()) return Status::Invalid("no etcd endpoints in '" + options.endpoints + "'");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(64 << 20);  // a watch response may carry a large transaction
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (options.cert_pem.empty() != options.key_pem.empty()) {
    return Status::Invalid("a client certificate for etcd needs both --etcd-cert and --etcd-key");
  }
  // https:// or any certificate: TLS, with the system's roots when no CA is given.
  if (!options.ca_pem.empty() || !options.cert_pem.empty() || options.endpoints.find("https://") != std::string::npos) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    ssl.pem_private_key = options.key_pem;
    ssl.pem_cert_chain = options.cert_pem;
    creds = grpc::SslCredentials(ssl);
  }
  impl->channel = grpc::CreateCustomChannel(target, creds, args);
  impl->kv = pb::KV::NewStub(impl->channel);
  impl->watch = pb::Watch::NewStub(impl->channel);
  impl->lease = pb::Lease::NewStub(impl->channel);
  out->reset(new EtcdClient(std::move(impl)));
  return Status::Ok();
}

Status EtcdClient::Range(std::string_view key, std::string_view range_end,
                         std::vector<KeyValue>* out, int64_t* revision, int64_t at_revision,
                         int64_t limit, bool* more) {
  pb::RangeRequest req;
  req.set_key(std::string(key));
  if (!range_end.empty()) req.set_range_end(std::string(range_end));
  req.set_revision(at_revision);
  req.set_limit(limit);
  pb::RangeResponse resp;
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  if (Status s = FromGrpc(impl_->kv->Range(&ctx, req, &resp), "range"); !s.ok()) return s;
  out->clear();
  for (const auto& kv : resp.kvs()) out->push_back(KeyValue{kv.key(), kv.value(), kv.mod_revision(), kv.lease()});
  if (revision) *revision = resp.header().revision();
  if (more) *more = resp.more();
  return Status::Ok();
}

Status EtcdClient::RangeAll(std::string_view key, std::string_view range_end,
                            const std::function<void(std::vector<KeyValue>& page)>& each, int64_t* revision) {
  constexpr int64_t kPage = 2000;
  std::string from(key);
  int64_t at = 0;
  for (bool more = true; more;) {
    std::vector<KeyValue> page;
    int64_t rev = 0;
    if (Status s = Range(from, range_end, &page, &rev, at, kPage, &more); !s.ok()) return s;
    if (at == 0) at = rev;  // every page at the first page's revision
    if (!page.empty()) from = page.back().key + std::string(1, '\0');
    each(page);
  }
  *revision = at;
  return Status::Ok();
}

Status EtcdClient::RangeAll(std::string_view key, std::string_view range_end,
                            std::vector<KeyValue>* out, int64_t* revision) {
  out->clear();
  return RangeAll(key, range_end, [out](std::vector<KeyValue>& page) {
    for (KeyValue& kv : page) out->push_back(std::move(kv));
  }, revision);
}

Status EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  return FromGrpc(impl_->kv->Put(&ctx, req, &resp), "put");
}

Status EtcdClient::Delete(std::string_view key, std::string_view range_end, int64_t* deleted) {
  pb::DeleteRangeRequest req;
  req.set_key(std::string(key));
  if (!range_end.empty()) req.set_range_end(std::string(range_end));
  pb::DeleteRangeResponse resp;
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  if (Status s = FromGrpc(impl_->kv->DeleteRange(&ctx, req, &resp), "delete"); !s.ok()) return s;
  if (deleted) *deleted = resp.deleted();
  return Status::Ok();
}

Status EtcdClient::Txn(const std::vector<std::pair<std::string, int64_t>>& expect,
                       const std::vector<std::pair<std::string, std::string>>& puts,
                       const std::vector<std::string>& deletes, bool* applied) {
  pb::TxnRequest req;
  for (const auto& [key, mod] : expect) {
    pb::Compare* c = req.add_compare();
    c->set_key(key);
    c->set_target(pb::Compare::MOD);
    c->set_result(pb::Compare::EQUAL);
    c->set_mod_revision(mod);
  }
  for (const auto& [key, value] : puts) {
    pb::PutRequest* p = req.add_success()->mutable_request_put();
    p->set_key(key);
    p->set_value(value);
  }
  for (const std::string& key : deletes) req.add_success()->mutable_request_delete_range()->set_key(key);
  pb::TxnResponse resp;
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  if (Status s = FromGrpc(impl_->kv->Txn(&ctx, req, &resp), "transaction"); !s.ok()) return s;
  *applied = resp.succeeded();
  return Status::Ok();
}

Status EtcdClient::LeaseGrant(int64_t ttl_s, int64_t* id) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  pb::LeaseGrantResponse resp;
  grpc::ClientContext ctx;
  impl_->Deadline(&ctx);
  if (Status s = FromGrpc(impl_->lease->LeaseGrant(&ctx, req, &resp), "lease grant"); !s.ok()) return s;
  if (!resp.error().empty()) return Status::Invalid("etcd lease grant: " + resp.error());
  *id = resp.id();
  return Status::Ok();
}

namespace {

class GrpcWatch final : public EtcdClient::Watch {
 public:
  explicit GrpcWatch(pb::Watch::Stub* stub) : stream_(stub->Watch(&ctx_)) {}
  ~GrpcWatch() override {
    Cancel();
    (void)stream_->Finish();
  }
  bool Create(std::string_view key, std::string_view range_end, int64_t start) {
    pb::WatchRequest req;
    pb::WatchCreateRequest* c = req.mutable_create_request();
    c->set_key(std::string(key));
    c->set_range_end(std::string(range_end));
    c->set_start_revision(start);
    c->set_progress_notify(true);
    return stream_->Write(req);
  }
  Status Next(WatchBatch* out) override {
    pb::WatchResponse resp;
    if (!stream_->Read(&resp)) return Status::Unavailable("etcd watch: the connection ended");
    *out = WatchBatch{};
    out->revision = resp.header().revision();
    out->canceled = resp.canceled();
    out->compact_revision = resp.compact_revision();
    out->cancel_reason = resp.cancel_reason();
    for (const auto& e : resp.events()) {
      out->events.push_back(WatchEvent{e.type() == ::mvccpb::Event::DELETE,
                                       KeyValue{e.kv().key(), e.kv().value(), e.kv().mod_revision(), e.kv().lease()}});
    }
    return Status::Ok();
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
};

class GrpcKeepAlive final : public EtcdClient::KeepAlive {
 public:
  GrpcKeepAlive(pb::Lease::Stub* stub, int64_t lease) : lease_(lease), stream_(stub->LeaseKeepAlive(&ctx_)) {}
  ~GrpcKeepAlive() override {
    Cancel();
    (void)stream_->Finish();
  }
  Status Renew(int64_t* ttl_s) override {
    pb::LeaseKeepAliveRequest req;
    req.set_id(lease_);
    pb::LeaseKeepAliveResponse resp;
    if (!stream_->Write(req) || !stream_->Read(&resp)) {
      return Status::Unavailable("etcd lease keepalive: the connection ended");
    }
    *ttl_s = resp.ttl();
    return Status::Ok();
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  int64_t lease_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>> stream_;
};

}  // namespace

Status EtcdClient::StartWatch(std::string_view key, std::string_view range_end,
                              int64_t start_revision, std::unique_ptr<Watch>* out) {
  auto w = std::make_unique<GrpcWatch>(impl_->watch.get());
  if (!w->Create(key, range_end, start_revision)) return Status::Unavailable("etcd watch: cannot start");
  *out = std::move(w);
  return Status::Ok();
}

Status EtcdClient::StartKeepAlive(int64_t lease, std::unique_ptr<KeepAlive>* out) {
  *out = std::make_unique<GrpcKeepAlive>(impl_->lease.get(), lease);
  return Status::Ok();
}

}  // namespace palisade::cluster
