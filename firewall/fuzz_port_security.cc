// libFuzzer target: port security (slot 1) behind the packet parser, fed sequences of frames
// from a VM bound to one MAC and two addresses: raw bytes, frames built from fuzzed fields (ARP
// of every kind, IPv4/IPv6 with TCP, UDP, ICMP, neighbour discovery, DHCP ports) and corrupted
// copies of earlier ones. Whatever the bytes, a frame that leaves the VM may pass only if a
// reference written apart from the filter allows it: the bound MAC, a well-formed Ethernet/IPv4
// ARP for a bound (or no) address, no parse error, a bound, unspecified or own link-local
// source address, a neighbour advertisement only for a bound address, and no router or DHCP
// server messages unless the binding allows them.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "firewall/packet_builder.h"
#include "firewall/port_security.h"

namespace palisade::fw {
namespace {

constexpr uint64_t kMac = 0x020000000001;  // own link-local: fe80::ff:fe00:1
const IpAddr kBound[] = {*IpAddr::Parse("10.0.0.1"), *IpAddr::Parse("2001:db8::1")};
const IpAddr kPool[] = {kBound[0], kBound[1], *IpAddr::Parse("10.0.0.2"), *IpAddr::Parse("0.0.0.0"),
                        *IpAddr::Parse("::"), *IpAddr::Parse("fe80::ff:fe00:1"),
                        *IpAddr::Parse("fe80::ff:fe00:2"), *IpAddr::Parse("2001:db8::2"),
                        *IpAddr::Parse("255.255.255.255"), *IpAddr::Parse("ff02::1")};
const uint64_t kMacs[] = {kMac, 0x020000000002, 0, 0xffffffffffff};
const uint8_t kIcmpTypes[] = {8, 0, 3, 5, 133, 134, 135, 136, 137, 128};
const uint16_t kPorts[] = {67, 68, 546, 547, 53, 80};

bool Unspecified(const IpAddr& a) { return a == IpAddr{} || a == *IpAddr::Parse("0.0.0.0"); }
bool Bound(const IpAddr& a) {
  return std::find(std::begin(kBound), std::end(kBound), a) != std::end(kBound) ||
         a == *IpAddr::Parse("fe80::ff:fe00:1");
}

bool MayLeave(const uint8_t* f, uint32_t len, const PortBinding& b) {
  Packet p;
  ParsePacket(f, len, &p);
  if (len < 14 || p.src_mac != kMac) return false;
  if (p.ethertype == kEthArp) {
    return p.error == ParseError::kNone && (p.arp_op == 1 || p.arp_op == 2) && p.arp_sha == kMac &&
           (Unspecified(p.arp_spa) || Bound(p.arp_spa));
  }
  if (p.error != ParseError::kNone) return false;
  if (!p.ip) return true;
  const bool icmp = p.has_l4 && p.tuple.proto == (p.v6 ? kProtoIcmp6 : kProtoIcmp);
  if (icmp && !b.router && (p.v6 ? (p.icmp_type == 134 || p.icmp_type == 137) : p.icmp_type == 5)) return false;
  if (p.has_l4 && p.tuple.proto == kProtoUdp && !b.dhcp_server && p.tuple.sport == (p.v6 ? 547 : 67)) return false;
  if (p.v6 && icmp && p.icmp_type == 136 && p.l4_len >= 24 && !Bound(IpAddr::FromV6Bytes(f + p.l4_offset + 8))) {
    return false;
  }
  return Unspecified(p.tuple.src) || Bound(p.tuple.src);
}

std::vector<uint8_t> Frame(FuzzedDataProvider& in, const std::vector<std::vector<uint8_t>>& sent) {
  const uint8_t kind = in.ConsumeIntegralInRange<uint8_t>(0, 3);
  if (kind == 0) return in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 96));
  if (kind == 1 && !sent.empty()) {
    std::vector<uint8_t> f = sent[in.ConsumeIntegralInRange<size_t>(0, sent.size() - 1)];
    const int flips = in.ConsumeIntegralInRange<int>(1, 4);
    for (int i = 0; i < flips && !f.empty(); i++) {
      f[in.ConsumeIntegralInRange<size_t>(0, f.size() - 1)] ^= in.ConsumeIntegral<uint8_t>();
    }
    return f;
  }
  const uint64_t mac = kMacs[in.ConsumeIntegralInRange<size_t>(0, std::size(kMacs) - 1)];
  const IpAddr src = kPool[in.ConsumeIntegralInRange<size_t>(0, std::size(kPool) - 1)];
  const IpAddr dst = kPool[in.ConsumeIntegralInRange<size_t>(0, std::size(kPool) - 1)];
  if (kind == 2) {
    const uint64_t sha = in.ConsumeBool() ? mac : kMacs[in.ConsumeIntegralInRange<size_t>(0, std::size(kMacs) - 1)];
    std::vector<uint8_t> f = BuildArp(mac, in.ConsumeIntegralInRange<uint16_t>(0, 10), sha,
                                      src.is_v4() ? src : kBound[0], 0, dst.is_v4() ? dst : kBound[0]);
    if (in.ConsumeBool()) f[15] = in.ConsumeIntegral<uint8_t>();  // hardware type
    if (in.ConsumeBool()) f[18] = in.ConsumeIntegral<uint8_t>();  // hardware length
    return f;
  }
  FrameSpec s;
  s.src_mac = mac;
  s.src = src;
  s.dst = src.is_v4() == dst.is_v4() ? dst : src;
  const uint8_t proto = in.ConsumeIntegralInRange<uint8_t>(0, 2);
  s.proto = proto == 0 ? kProtoTcp : proto == 1 ? kProtoUdp : (s.src.is_v4() ? kProtoIcmp : kProtoIcmp6);
  s.sport = kPorts[in.ConsumeIntegralInRange<size_t>(0, std::size(kPorts) - 1)];
  s.dport = kPorts[in.ConsumeIntegralInRange<size_t>(0, std::size(kPorts) - 1)];
  s.icmp_type = kIcmpTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kIcmpTypes) - 1)];
  if (in.ConsumeBool()) {  // a neighbour advertisement's target, or any payload
    const IpAddr t = kPool[in.ConsumeIntegralInRange<size_t>(0, std::size(kPool) - 1)];
    s.payload.assign(t.b.begin(), t.b.end());
  }
  return BuildFrame(s);
}

}  // namespace
}  // namespace palisade::fw

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace palisade;
  using namespace palisade::fw;
  FuzzedDataProvider in(data, size);
  PortBinding binding{kMac, {kBound[0], kBound[1]}, /*learn=*/false};
  binding.router = in.ConsumeBool();
  binding.dhcp_server = in.ConsumeBool();
  PortSecurity ps(1, binding, nullptr);
  PortSecurity learner(2, PortBinding{0, {}, /*learn=*/true, /*max_learned=*/3}, nullptr);
  std::vector<std::vector<uint8_t>> sent;
  for (int n = 0; n < 32 && in.remaining_bytes() > 0; n++) {
    const std::vector<uint8_t> frame = Frame(in, sent);
    FilterBatch b{};
    b.dir = in.ConsumeBool() ? Direction::kIn : Direction::kOut;
    b.count = 1;
    b.pkts[0] = PacketRef{frame.data(), static_cast<uint32_t>(frame.size())};
    b.verdict[0] = Verdict::kPass;
    ps.Process(b);
    if (b.dir == Direction::kOut && b.verdict[0] == Verdict::kPass &&
        !MayLeave(frame.data(), static_cast<uint32_t>(frame.size()), binding)) {
      __builtin_trap();  // a frame the binding forbids left the VM
    }
    b.verdict[0] = Verdict::kPass;
    learner.Process(b);
    if (learner.learned().size() > 3) __builtin_trap();
    sent.push_back(frame);
  }
  return 0;
}
