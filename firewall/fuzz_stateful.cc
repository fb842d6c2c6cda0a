// libFuzzer target: sequences of packets through the stateful firewall, both directions, with
// a clock that moves. The input describes each packet (TCP, UDP, ICMP echo, ICMP errors quoting
// earlier packets, fragments, IPv6, raw bytes, corrupted copies) from small pools of addresses
// and ports, so that connections, replies, errors and fragments meet each other.
//
// The oracle is a reference decision written apart from the filter: a packet may pass only if
// the policy below admits it by itself, or it belongs to a connection that a packet admitted by
// the policy opened earlier (either direction), or it is an ICMP error sent back to the sender of
// such a connection's packet, or a later fragment of a first fragment that passed, not
// overlapping its header. The reference never forgets (it over-approximates what may pass), so
// any packet it cannot explain is a way through the firewall: the target traps. Packets come with
// a scratch or without, so both the established path and the general one are fuzzed.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <tuple>
#include <vector>

#include "firewall/packet_builder.h"
#include "firewall/parsed.h"
#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"

namespace palisade::fw {
namespace {

// The policy, and the same policy decided by hand for the oracle.
constexpr char kPolicy[] = R"(ruleset fuzz {
  rule 1 at 1 out protocol tcp from any to any port 80 accept;
  rule 2 at 2 in protocol tcp strict from any to any port 22 accept;
  rule 3 at 3 out protocol udp from any to any port 53 accept;
  rule 4 at 4 out protocol icmp icmptype 8 from any to any accept;
  rule 5 at 5 in protocol udp stateless from any to any port 9999 accept;
  rule 6 at 6 out inet6 protocol icmp6 icmptype 128 from any to any accept;
  rule 7 at 7 in protocol icmp icmptype 3 from addrset routers to any accept;
  rule 8 at 8 inout protocol any from any to any drop;
}
addrset routers {
ip 10.0.0.254,
})";

enum class Decision { kDrop, kAccept, kAcceptIfSyn, kStateless };

Decision Reference(bool in, const Packet& p) {
  const uint8_t proto = p.tuple.proto;
  const bool icmp4 = !p.v6 && proto == kProtoIcmp, icmp6 = p.v6 && proto == kProtoIcmp6;
  if (!in && proto == kProtoTcp && p.tuple.dport == 80) return Decision::kAccept;
  if (in && proto == kProtoTcp && p.tuple.dport == 22) return Decision::kAcceptIfSyn;
  if (!in && proto == kProtoUdp && p.tuple.dport == 53) return Decision::kAccept;
  if (!in && icmp4 && p.icmp_type == 8) return Decision::kAccept;
  if (in && proto == kProtoUdp && p.tuple.dport == 9999) return Decision::kStateless;
  if (!in && icmp6 && p.icmp_type == 128) return Decision::kAccept;
  if (in && icmp4 && p.icmp_type == 3 && p.tuple.src == *IpAddr::Parse("10.0.0.254")) return Decision::kAccept;
  return Decision::kDrop;
}

const IpAddr kAddrs[] = {*IpAddr::Parse("10.0.0.1"), *IpAddr::Parse("10.0.0.2"),
                         *IpAddr::Parse("10.0.0.254"), *IpAddr::Parse("2001:db8::1"),
                         *IpAddr::Parse("2001:db8::2")};
const uint16_t kPorts[] = {80, 22, 53, 9999, 40000, 40001, 0};
const uint8_t kIcmpTypes[] = {8, 0, 3, 11, 5, 13, 128, 129, 1, 134, 135, 136};

struct Oracle {
  std::set<std::tuple<IpAddr, IpAddr, uint16_t, uint16_t, uint8_t>> admitted;  // normalized keys
  struct First {
    IpAddr src, dst;
    uint32_t id;
    uint8_t proto;
    uint16_t hdr_end;
  };
  std::vector<First> firsts;

  static std::tuple<IpAddr, IpAddr, uint16_t, uint16_t, uint8_t> Key(const Tuple& t) {
    bool lo;
    const ConnKey k = MakeKey(t, &lo);
    return {k.lo, k.hi, k.lo_port, k.hi_port, k.proto};
  }

  // Whether a packet that passed may pass; records what it opened.
  bool Explain(bool in, const Packet& p) {
    if (p.error != ParseError::kNone) return false;
    if (!p.ip) return true;  // no L2 rules: non-IP frames are not the L3 policy's
    if (p.fragment && !p.first_fragment) {
      for (const First& f : firsts) {
        if (f.src == p.tuple.src && f.dst == p.tuple.dst && f.id == p.frag_id &&
            (p.v6 || f.proto == p.tuple.proto) && p.frag_offset >= f.hdr_end) {
          return true;
        }
      }
      return false;
    }
    const Decision d = Reference(in, p);
    const bool icmp = p.tuple.proto == (p.v6 ? kProtoIcmp6 : kProtoIcmp);
    bool ok = false;
    if (d == Decision::kAccept || d == Decision::kStateless) ok = true;
    if (d == Decision::kAcceptIfSyn && (p.tcp_flags & (tcp::kSyn | tcp::kAck | tcp::kRst)) == tcp::kSyn) ok = true;
    if (!ok && p.icmp_error && p.tuple.dst == p.quoted.src && admitted.count(Key(p.quoted))) ok = true;
    if (!ok && (!icmp || p.icmp_echo) && admitted.count(Key(p.tuple))) ok = true;
    if (!ok) return false;
    if (d == Decision::kAccept || d == Decision::kAcceptIfSyn) {
      if (!icmp || p.icmp_echo) admitted.insert(Key(p.tuple));
    }
    if (p.first_fragment) firsts.push_back({p.tuple.src, p.tuple.dst, p.frag_id, p.v6 ? uint8_t{0} : p.tuple.proto, p.frag_hdr_end});
    return true;
  }
};

std::vector<uint8_t> Frame(FuzzedDataProvider& in, const std::vector<std::vector<uint8_t>>& sent) {
  const uint8_t kind = in.ConsumeIntegralInRange<uint8_t>(0, 7);
  if (kind == 7) {  // raw bytes, or a corrupted copy of an earlier frame
    if (!sent.empty() && in.ConsumeBool()) {
      std::vector<uint8_t> f = sent[in.ConsumeIntegralInRange<size_t>(0, sent.size() - 1)];
      const int flips = in.ConsumeIntegralInRange<int>(1, 4);
      for (int i = 0; i < flips && !f.empty(); i++) {
        f[in.ConsumeIntegralInRange<size_t>(0, f.size() - 1)] ^= in.ConsumeIntegral<uint8_t>();
      }
      if (in.ConsumeBool() && !f.empty()) f.resize(in.ConsumeIntegralInRange<size_t>(0, f.size()));
      return f;
    }
    return in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 128));
  }
  FrameSpec s;
  const bool v6 = in.ConsumeBool();
  const size_t base = v6 ? 3 : 0, count = v6 ? 2 : 3;
  s.src = kAddrs[base + in.ConsumeIntegralInRange<size_t>(0, count - 1)];
  s.dst = kAddrs[base + in.ConsumeIntegralInRange<size_t>(0, count - 1)];
  s.sport = kPorts[in.ConsumeIntegralInRange<size_t>(0, std::size(kPorts) - 1)];
  s.dport = kPorts[in.ConsumeIntegralInRange<size_t>(0, std::size(kPorts) - 1)];
  s.payload.assign(in.ConsumeIntegralInRange<size_t>(0, 64), 0x5a);
  switch (kind) {
    case 0:
    case 1:
      s.proto = kProtoTcp;
      s.flags = in.ConsumeIntegral<uint8_t>() & 0x3f;
      s.seq = in.ConsumeBool() ? in.ConsumeIntegral<uint32_t>() : 1000 + in.ConsumeIntegralInRange<uint32_t>(0, 70000);
      s.ack = in.ConsumeBool() ? in.ConsumeIntegral<uint32_t>() : 1000 + in.ConsumeIntegralInRange<uint32_t>(0, 70000);
      s.window = in.ConsumeIntegral<uint16_t>();
      s.wscale = in.ConsumeIntegralInRange<int>(-1, 15);
      break;
    case 2: s.proto = kProtoUdp; break;
    case 3:
    case 4:
      s.proto = v6 ? kProtoIcmp6 : kProtoIcmp;
      s.icmp_type = kIcmpTypes[in.ConsumeIntegralInRange<size_t>(0, std::size(kIcmpTypes) - 1)];
      s.icmp_code = in.ConsumeIntegralInRange<uint8_t>(0, 4);
      if (kind == 4 && !sent.empty()) {  // an error quoting an earlier frame's IP header on
        const std::vector<uint8_t>& q = sent[in.ConsumeIntegralInRange<size_t>(0, sent.size() - 1)];
        if (q.size() > 14) s.payload.assign(q.begin() + 14, q.begin() + std::min<size_t>(q.size(), 14 + 48));
      }
      break;
    default: s.proto = kProtoUdp; break;
  }
  std::vector<uint8_t> f = BuildFrame(s);
  if (kind == 5 && !v6 && f.size() > 34) {  // an IPv4 fragment: id, offset, more
    f[18] = 0;
    f[19] = in.ConsumeIntegralInRange<uint8_t>(0, 3);
    const uint16_t offset = in.ConsumeIntegralInRange<uint16_t>(0, 8);
    f[20] = static_cast<uint8_t>((in.ConsumeBool() ? 0x20 : 0) | (offset >> 8));
    f[21] = static_cast<uint8_t>(offset);
  }
  if (kind == 6 && f.size() > 12) {  // VLAN tags in front
    const int tags = in.ConsumeIntegralInRange<int>(1, 3);
    for (int t = 0; t < tags; t++) {
      const uint8_t tag[4] = {0x81, 0x00, 0, static_cast<uint8_t>(t + 1)};
      f.insert(f.begin() + 12, tag, tag + 4);
    }
  }
  return f;
}

}  // namespace
}  // namespace palisade::fw

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace palisade;
  using namespace palisade::fw;
  static const std::shared_ptr<const RuleTable> table = [] {
    RuleFile f;
    if (!ParseRuleFile(kPolicy, &f).ok()) __builtin_trap();
    std::shared_ptr<const RuleTable> t;
    if (!RuleTable::Compile(f, nullptr, 1, &t).ok()) __builtin_trap();
    return t;
  }();
  FuzzedDataProvider in(data, size);
  FirewallOptions options;
  options.conn_limit = in.ConsumeIntegralInRange<uint32_t>(1, 64);
  StatefulFilter filter(1, nullptr, options, 0x1234567800000000ull);
  filter.SetTable(table);
  Oracle oracle;
  std::vector<std::vector<uint8_t>> sent;
  uint64_t now = 1000ull * 1000000000ull;
  for (int n = 0; n < 64 && in.remaining_bytes() > 0; n++) {
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0) now += in.ConsumeIntegralInRange<uint64_t>(0, 200) * 1000000000ull;
    const bool into_vm = in.ConsumeBool();
    const std::vector<uint8_t> frame = Frame(in, sent);
    FilterBatch b{};
    b.dir = into_vm ? Direction::kIn : Direction::kOut;
    b.count = 1;
    b.now_ns = now;
    b.pkts[0] = PacketRef{frame.data(), static_cast<uint32_t>(frame.size())};
    b.verdict[0] = Verdict::kPass;
    // With a scratch, as the switch's workers give one, established packets take the filter's
    // established path; without, its general path.
    PacketScratch scratch;
    scratch.tag = 0;
    if (in.ConsumeBool()) b.scratch[0] = &scratch;
    filter.Process(b);
    if (b.verdict[0] == Verdict::kPass) {
      Packet p;
      ParsePacket(frame.data(), static_cast<uint32_t>(frame.size()), &p);
      if (!oracle.Explain(into_vm, p)) __builtin_trap();  // a packet the policy forbids passed
    }
    if (in.ConsumeIntegralInRange<int>(0, 15) == 0) filter.Expire(now, 1000);
    sent.push_back(frame);
  }
  return 0;
}
