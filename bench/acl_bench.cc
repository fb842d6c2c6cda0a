// The firewall's bit-vector classifier (firewall/classifier.h) against DPDK's rte_acl on the
// same rule tables, at 1,000, 10,000, 30,000 and 100,000 rules: build time, memory, and time
// per lookup (ours one packet at a time, as the filter calls it; rte_acl in bursts of 32, its
// best case). Each rule lets one TCP port of one host through (the address fields' worst case
// for the bit vectors); lookups are random, half of them to a rule's host and port.
#include <rte_acl.h>
#include <rte_eal.h>
#include <rte_malloc.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "firewall/classifier.h"

namespace palisade::fw {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

uint32_t HostOf(int i) { return 0x0a000000u + static_cast<uint32_t>(i); }
uint16_t PortOf(int i) { return static_cast<uint16_t>(1000 + i % 50000); }

std::vector<Rule> Rules(int n) {
  std::vector<Rule> rules(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    Rule& r = rules[static_cast<size_t>(i)];
    r.id = static_cast<uint32_t>(i + 1);
    r.pos = static_cast<uint32_t>(i + 1);
    r.dir = RuleDir::kIn;
    r.proto = 6;
    r.dst.kind = Endpoint::Kind::kIp;
    r.dst.prefix = IpPrefix::Host(IpAddr::V4(HostOf(i)));
    r.dst.ports.push_back({PortOf(i), PortOf(i)});
    r.action = Action::kAccept;
  }
  return rules;
}

// rte_acl's view of an IPv4 packet (network byte order), as DPDK's examples lay it out.
struct Ipv4Key {
  uint8_t proto;
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
} __attribute__((packed));

const rte_acl_field_def kFields[5] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), 0, 0, offsetof(Ipv4Key, proto)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), 1, 1, offsetof(Ipv4Key, src)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), 2, 2, offsetof(Ipv4Key, dst)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), 3, 3, offsetof(Ipv4Key, sport)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), 4, 3, offsetof(Ipv4Key, dport)},
};
RTE_ACL_RULE_DEF(AclRule, 5);

size_t HeapBytes() {
  rte_malloc_socket_stats s{};
  rte_malloc_get_socket_stats(0, &s);
  return s.heap_allocsz_bytes;
}

void Run(int n) {
  const std::vector<Rule> rules = Rules(n);
  std::mt19937 rng(n);
  std::vector<ClassifyKey> keys(4096);
  std::vector<Ipv4Key> raw(keys.size());
  for (size_t k = 0; k < keys.size(); k++) {
    const int i = static_cast<int>(rng() % static_cast<unsigned>(n));
    const bool hit = rng() % 2;
    const uint32_t dst = hit ? HostOf(i) : HostOf(i) + (1u << 20);
    const uint16_t dport = PortOf(i);
    const uint32_t src = 0xc0a80000u + rng() % 65536;
    const auto sport = static_cast<uint16_t>(1024 + rng() % 60000);
    keys[k] = ClassifyKey{true, false, 6, IpAddr::V4(src), IpAddr::V4(dst), sport, dport};
    raw[k] = Ipv4Key{6, htonl(src), htonl(dst), htons(sport), htons(dport)};
  }

  // Ours.
  auto t0 = Clock::now();
  std::unique_ptr<const Classifier> ours;
  if (!Classifier::Build(rules, {}, &ours).ok()) std::abort();
  const double ours_build = Ms(t0);
  int ours_hits = 0;
  t0 = Clock::now();
  constexpr int kPasses = 50;
  for (int p = 0; p < kPasses; p++) {
    for (const ClassifyKey& k : keys) ours_hits += ours->Lookup(k) >= 0;
  }
  const double ours_ns = Ms(t0) * 1e6 / (kPasses * static_cast<double>(keys.size()));

  // rte_acl.
  const std::string name = "bench" + std::to_string(n);
  rte_acl_param param{name.c_str(), SOCKET_ID_ANY, RTE_ACL_RULE_SZ(5), static_cast<uint32_t>(n)};
  const size_t heap0 = HeapBytes();
  rte_acl_ctx* ctx = rte_acl_create(&param);
  if (ctx == nullptr) std::abort();
  std::vector<AclRule> acl(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    AclRule& r = acl[static_cast<size_t>(i)];
    r = AclRule{};
    r.data.category_mask = 1;
    r.data.priority = n - i;  // the first rule by position wins
    r.data.userdata = static_cast<uint32_t>(i + 1);
    r.field[0].value.u8 = 6;
    r.field[0].mask_range.u8 = 0xff;
    r.field[1].mask_range.u32 = 0;  // any source
    r.field[2].value.u32 = HostOf(i);
    r.field[2].mask_range.u32 = 32;
    r.field[3].value.u16 = 0;
    r.field[3].mask_range.u16 = 0xffff;
    r.field[4].value.u16 = PortOf(i);
    r.field[4].mask_range.u16 = PortOf(i);
  }
  t0 = Clock::now();
  if (rte_acl_add_rules(ctx, reinterpret_cast<const rte_acl_rule*>(acl.data()), static_cast<uint32_t>(n)) != 0) {
    std::abort();
  }
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = 5;
  std::copy(std::begin(kFields), std::end(kFields), cfg.defs);
  if (int rc = rte_acl_build(ctx, &cfg); rc != 0) {
    std::printf("%7d rules: rte_acl_build failed (%d)\n", n, rc);
    rte_acl_free(ctx);
    return;
  }
  const double acl_build = Ms(t0);
  const size_t acl_bytes = HeapBytes() - heap0;
  std::vector<const uint8_t*> data(keys.size());
  for (size_t k = 0; k < keys.size(); k++) data[k] = reinterpret_cast<const uint8_t*>(&raw[k]);
  std::vector<uint32_t> results(keys.size());
  int acl_hits = 0;
  t0 = Clock::now();
  for (int p = 0; p < kPasses; p++) {
    for (size_t k = 0; k < keys.size(); k += 32) rte_acl_classify(ctx, &data[k], &results[k], 32, 1);
  }
  const double acl_ns = Ms(t0) * 1e6 / (kPasses * static_cast<double>(keys.size()));
  for (size_t k = 0; k < keys.size(); k++) acl_hits += results[k] != 0;
  rte_acl_free(ctx);
  std::printf("%7d rules: bit vectors build %8.1f ms, %8.1f MB, %6.1f ns/lookup | rte_acl build %8.1f ms, %8.1f MB, "
              "%6.1f ns/lookup | lookup %.2fx, build %.2fx, memory %.2fx (ours / rte_acl)%s\n",
              n, ours_build, static_cast<double>(ours->memory_bytes()) / 1e6, ours_ns, acl_build,
              static_cast<double>(acl_bytes) / 1e6, acl_ns, ours_ns / acl_ns, ours_build / acl_build,
              static_cast<double>(ours->memory_bytes()) / static_cast<double>(acl_bytes),
              ours_hits == acl_hits * kPasses ? "" : "  RESULTS DIFFER");
}

}  // namespace
}  // namespace palisade::fw

int main(int argc, char** argv) {
  std::string prefix = "--file-prefix=palisade-acl-" + std::to_string(getpid());
  std::vector<std::string> args = {"acl_bench", "--no-huge", "-m", "3072", "--no-pci", prefix,
                                   "--log-level=lib.*:error", "--no-telemetry"};
  std::vector<char*> eal;
  for (auto& a : args) eal.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) return 1;
  std::vector<int> sizes = {1000, 10000, 30000, 100000};
  if (argc > 1) sizes = {std::atoi(argv[1])};
  for (int n : sizes) palisade::fw::Run(n);
  std::string runtime = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::filesystem::remove_all(runtime);
  return 0;
}
