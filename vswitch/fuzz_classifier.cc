// libFuzzer target: the rte_acl engine must find, for every packet, the rule the bit-vector
// classifier finds (itself checked against a linear scan), on whatever table the input builds:
// rules of any direction, family and protocol, addresses and address sets of both families
// (negated or not, any prefix length), port ranges, ICMP types and codes. A difference traps.
#include <fuzzer/FuzzedDataProvider.h>
#include <rte_eal.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vswitch/acl_classifier.h"

namespace {

using namespace palisade::fw;

IpAddr Addr(FuzzedDataProvider& in, bool v6) {
  // A small neighbourhood, so that rules and packets meet; the low bits vary most.
  if (v6) {
    const u128 base = (u128{0x20010db8} << 96) | (u128{in.ConsumeIntegralInRange<uint8_t>(0, 3)} << 64);
    return IpAddr::FromValue(base | in.ConsumeIntegral<uint16_t>());
  }
  return IpAddr::V4(0x0a000000u | (uint32_t{in.ConsumeIntegralInRange<uint8_t>(0, 3)} << 16) |
                    in.ConsumeIntegral<uint16_t>());
}

IpPrefix Prefix(FuzzedDataProvider& in) {
  const bool v6 = in.ConsumeBool();
  const IpAddr a = Addr(in, v6);
  const auto len = static_cast<uint8_t>(v6 ? in.ConsumeIntegralInRange<int>(0, 128) : in.ConsumeIntegralInRange<int>(96, 128));
  const u128 mask = len == 0 ? 0 : len == 128 ? ~u128{0} : ~((~u128{0}) >> len);
  return IpPrefix{IpAddr::FromValue(a.value() & mask), len};
}

uint16_t Port(FuzzedDataProvider& in) {
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<uint16_t>(0, 40) : in.ConsumeIntegral<uint16_t>();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* eal[] = {"fuzz_classifier", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
                       "--lcores=0", "--log-level=lib.*:error", "--no-telemetry"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) __builtin_trap();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const palisade::AclClassifierEngine engine;
  FuzzedDataProvider in(data, size);
  ResolvedSets sets;
  for (int s = 0; s < 3; s++) {
    std::vector<IpPrefix>& members = sets["s" + std::to_string(s)];
    for (int m = in.ConsumeIntegralInRange<int>(0, 4); m > 0; m--) members.push_back(Prefix(in));
  }
  std::vector<Rule> rules(in.ConsumeIntegralInRange<size_t>(1, 48));
  for (size_t i = 0; i < rules.size(); i++) {
    Rule& r = rules[i];
    r.pos = static_cast<uint32_t>(i + 1);
    r.dir = static_cast<RuleDir>(in.ConsumeIntegralInRange<int>(1, 3));
    r.family = static_cast<Family>(in.ConsumeIntegralInRange<int>(0, 2));
    const int protos[] = {kAny, 6, 17, 1, 58, 47};
    r.proto = protos[in.ConsumeIntegralInRange<int>(0, 5)];
    for (Endpoint* e : {&r.src, &r.dst}) {
      e->kind = static_cast<Endpoint::Kind>(in.ConsumeIntegralInRange<int>(0, 2));
      e->negate = e->kind != Endpoint::Kind::kAny && in.ConsumeBool();
      if (e->kind == Endpoint::Kind::kAddrSet) e->set = "s" + std::to_string(in.ConsumeIntegralInRange<int>(0, 2));
      if (e->kind == Endpoint::Kind::kIp) e->prefix = Prefix(in);
      if (r.proto == 6 || r.proto == 17) {
        for (int p = in.ConsumeIntegralInRange<int>(0, 3); p > 0; p--) {
          const uint16_t a = Port(in), b = Port(in);
          e->ports.push_back({std::min(a, b), std::max(a, b)});
        }
      }
    }
    if (r.proto == 1 || r.proto == 58) {
      if (in.ConsumeBool()) r.icmp_type = in.ConsumeIntegralInRange<int>(0, 4);
      if (in.ConsumeBool()) r.icmp_code = in.ConsumeIntegralInRange<int>(0, 2);
    }
  }
  std::unique_ptr<const Classifier> acl, bits;
  SetLargeTableEngine(&engine, 0);
  if (!Classifier::Build(rules, sets, &acl).ok()) __builtin_trap();
  SetLargeTableEngine(nullptr, 0);
  if (!Classifier::Build(rules, sets, &bits).ok()) __builtin_trap();
  while (in.remaining_bytes() > 0) {
    const bool v6 = in.ConsumeBool();
    const uint8_t protos[] = {6, 17, 1, 58, 47, 0};
    const ClassifyKey k{in.ConsumeBool(), v6, protos[in.ConsumeIntegralInRange<int>(0, 5)], Addr(in, v6), Addr(in, v6),
                        Port(in), Port(in)};
    if (acl->Lookup(k) != bits->Lookup(k)) __builtin_trap();
  }
  return 0;
}
