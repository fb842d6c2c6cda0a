#include "rpc/tls.h"

namespace palisade::rpc {
namespace {

kj::Own<kj::TlsContext> Context(const TlsConfig& tls, bool verify_clients, kj::Timer* timer) {
  kj::TlsKeypair keypair{kj::TlsPrivateKey(tls.key_pem.c_str()),
                         kj::TlsCertificate(tls.cert_pem.c_str())};
  kj::TlsCertificate ca(tls.ca_pem.c_str());
  kj::TlsContext::Options options;
  options.useSystemTrustStore = false;
  options.verifyClients = verify_clients;
  options.trustedCertificates = kj::arrayPtr(&ca, 1);
  options.defaultKeypair = keypair;
  if (timer != nullptr) {
    options.timer = *timer;
    options.acceptTimeout = kHandshakeTimeoutSeconds * kj::SECONDS;
  }
  return kj::heap<kj::TlsContext>(kj::mv(options));
}

}  // namespace

// A client without a certificate from our CA gets nothing.
kj::Own<kj::TlsContext> ServerTlsContext(const TlsConfig& tls, kj::Timer& timer) {
  return Context(tls, true, &timer);
}

kj::Own<kj::TlsContext> ClientTlsContext(const TlsConfig& tls) { return Context(tls, false, nullptr); }

}  // namespace palisade::rpc
