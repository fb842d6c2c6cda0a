#include "firewall/port_security.h"

#include <algorithm>
#include <cstring>

#include "firewall/packet.h"
#include "firewall/parsed.h"

namespace palisade::fw {
namespace {

bool Unspecified(const IpAddr& a) {
  if (a.is_v4()) return a.v4() == 0;
  return a == IpAddr{};
}

}  // namespace

PortSecurity::PortSecurity(uint32_t filter_id, PortBinding binding, PacketLog* log)
    : filter_id_(filter_id), log_(log), binding_(std::move(binding)) {
  routers_.reserve(kMaxRouters);  // both filled on workers: never grown there
  learned_.reserve(binding_.max_learned);
}

std::vector<IpAddr> PortSecurity::Copy(bool bound) const {
  std::vector<IpAddr> out;
  for (bool copied = false; !copied;) {  // sized here, so that the owner only copies
    size_t n = 0;
    OnOwner([&] {
      n = (bound ? binding_.ips.size() : 0) + learned_.size();
      copied = n <= out.capacity();
      if (!copied) return;
      if (bound) out.assign(binding_.ips.begin(), binding_.ips.end());
      for (const Learned& l : learned_) out.push_back(l.addr);
    });
    out.reserve(n);
  }
  return out;
}

std::vector<IpAddr> PortSecurity::addresses() const { return Copy(/*bound=*/true); }

uint64_t PortSecurity::mac() const {
  uint64_t mac = 0;
  OnOwner([&] { mac = binding_.mac; });
  return mac;
}

uint64_t PortSecurity::learned_mac() const {
  uint64_t mac = 0;
  OnOwner([&] { mac = mac_learned_ ? binding_.mac : 0; });
  return mac;
}

std::vector<IpAddr> PortSecurity::learned() const { return Copy(/*bound=*/false); }

void PortSecurity::Restore(uint64_t mac, const std::vector<IpAddr>& learned) {
  OnOwner([&] {
    if (binding_.mac == 0 && mac != 0) {
      binding_.mac = mac;
      mac_learned_ = true;
    }
    for (const IpAddr& a : learned) {
      if (Allowed(a) || !Learnable(a)) continue;
      learned_.push_back(Learned{a, 0});  // its idle time counts from the next Expire
      MarkChanged();
    }
  });
}

void PortSecurity::SetReserved(std::vector<IpAddr> reserved) {
  OnOwner([&] {
    reserved_.swap(reserved);  // the old list is freed on the caller, with `reserved`
    // Another port's binding wins over what was learned here.
    const size_t n = std::erase_if(learned_, [&](const Learned& l) {
      return std::find(reserved_.begin(), reserved_.end(), l.addr) != reserved_.end();
    });
    if (n > 0) MarkChanged();
  });
}

bool PortSecurity::Expire(uint64_t now_ns) {
  const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000ull);
  bool expired = false;
  OnOwner([&] {
    const size_t before = learned_.size();
    std::erase_if(learned_, [&](Learned& l) {
      if (l.last_used_s == 0) l.last_used_s = now_s;
      return now_s - l.last_used_s > binding_.learn_timeout_s;
    });
    expired = learned_.size() != before;
  });
  if (expired) MarkChanged();
  return expired;
}

namespace {

// fe80::/64 with the interface identifier derived from the MAC (RFC 4291 modified EUI-64): a
// port bound to a MAC may always use its own link-local address.
bool IsOwnLinkLocal(const IpAddr& a, uint64_t mac) {
  if (mac == 0) return false;
  const uint8_t want[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0,
                            static_cast<uint8_t>((mac >> 40) ^ 0x02), static_cast<uint8_t>(mac >> 32),
                            static_cast<uint8_t>(mac >> 24), 0xff, 0xfe,
                            static_cast<uint8_t>(mac >> 16), static_cast<uint8_t>(mac >> 8),
                            static_cast<uint8_t>(mac)};
  return std::memcmp(a.b.data(), want, 16) == 0;
}

}  // namespace

bool PortSecurity::Allowed(const IpAddr& a) const {
  return IsOwnLinkLocal(a, binding_.mac) ||
         std::find(binding_.ips.begin(), binding_.ips.end(), a) != binding_.ips.end() ||
         std::any_of(learned_.begin(), learned_.end(), [&](const Learned& l) { return l.addr == a; });
}

bool PortSecurity::Permit(const IpAddr& a, uint32_t now_s) {
  for (Learned& l : learned_) {
    if (l.addr == a) {
      l.last_used_s = now_s;
      return true;
    }
  }
  return IsOwnLinkLocal(a, binding_.mac) ||
         std::find(binding_.ips.begin(), binding_.ips.end(), a) != binding_.ips.end();
}

bool PortSecurity::Learnable(const IpAddr& a) const {
  return binding_.learn && learned_.size() < binding_.max_learned &&
         std::find(reserved_.begin(), reserved_.end(), a) == reserved_.end() &&
         std::find(routers_.begin(), routers_.end(), a) == routers_.end();
}

bool PortSecurity::Claim(const IpAddr& a, uint32_t now_s) {
  if (Permit(a, now_s)) return true;
  if (!Learnable(a)) return false;
  learned_.push_back(Learned{a, now_s});
  MarkChanged();
  return true;
}

void PortSecurity::Log(const FilterBatch& b, uint16_t i, const IpAddr& src, const IpAddr& dst,
                       uint8_t proto) {
  if (log_ == nullptr) return;
  LogEvent e{};
  e.now_ns = b.now_ns;
  e.filter_id = filter_id_;
  e.kind = LogEvent::Kind::kSpoofGuard;
  e.action = LogEvent::Action::kDrop;
  e.v6 = !src.is_v4();
  e.proto = proto;
  e.len = static_cast<uint16_t>(b.pkts[i].len);
  e.src = src;
  e.dst = dst;
  std::snprintf(e.ruleset, sizeof e.ruleset, "spoofguard");
  log_->Push(b.worker, e, &log_budget_);
}

// Toward the VM: a DHCP server's ACK (BOOTP reply, option 53 = 5) addressed to the VM's MAC
// teaches the address it assigned (yiaddr) and names the routers (option 3), which the VM may
// then never claim; so does the source of a router advertisement.
void PortSecurity::LearnFromInbound(const uint8_t* frame, const Packet& p, uint32_t now_s) {
  auto router = [this](const IpAddr& a) {  // the last kMaxRouters, in place (no allocation)
    if (std::find(routers_.begin(), routers_.end(), a) != routers_.end()) return;
    if (routers_.size() == kMaxRouters) routers_.erase(routers_.begin());
    routers_.push_back(a);
  };
  if (p.v6 && p.tuple.proto == kProtoIcmp6 && p.icmp_type == 134) router(p.tuple.src);
  if (p.v6 || p.tuple.proto != kProtoUdp || p.tuple.sport != 67 || p.tuple.dport != 68) return;
  const uint8_t* bootp = frame + p.l4_offset + 8;
  const uint32_t len = p.l4_len >= 8 ? p.l4_len - 8u : 0;
  if (len < 240 || bootp[0] != 2) return;  // fixed part and magic cookie
  if (bootp[236] != 99 || bootp[237] != 130 || bootp[238] != 83 || bootp[239] != 99) return;
  uint64_t chaddr = 0;
  for (int i = 0; i < 6; i++) chaddr = (chaddr << 8) | bootp[28 + i];
  if (binding_.mac == 0 || chaddr != binding_.mac) return;
  bool ack = false;
  const uint8_t* routers = nullptr;  // option 3: addresses, 4 bytes each
  uint8_t routers_len = 0;
  for (uint32_t i = 240; i + 1 < len;) {
    const uint8_t code = bootp[i];
    if (code == 255) break;
    if (code == 0) {
      i++;
      continue;
    }
    const uint8_t olen = bootp[i + 1];
    if (i + 2u + olen > len) break;
    if (code == 53 && olen == 1) ack = bootp[i + 2] == 5;
    if (code == 3) {
      routers = bootp + i + 2;
      routers_len = olen;
    }
    i += 2u + olen;
  }
  if (!ack) return;
  for (uint32_t k = 0; k + 4 <= routers_len; k += 4) router(IpAddr::FromV4Bytes(routers + k));
  const IpAddr yiaddr = IpAddr::FromV4Bytes(bootp + 16);
  if (!Unspecified(yiaddr)) Claim(yiaddr, now_s);
}

DropReason PortSecurity::Check(const FilterBatch& b, uint16_t i, const Packet& p, uint32_t now_s) {
  if (b.pkts[i].len < 14) return DropReason::kRunt;
  if (binding_.mac == 0) {  // trust on first use
    binding_.mac = p.src_mac;
    mac_learned_ = true;
    learned_version_.fetch_add(1, std::memory_order_relaxed);
  }
  if (p.src_mac != binding_.mac) return DropReason::kSpoofGuard;
  if (p.ethertype == kEthArp) {
    // Only Ethernet/IPv4 requests and replies, for the VM's own MAC and addresses: any other
    // ARP (another hardware type, a truncated one) may still poison a neighbour's cache.
    const bool well_formed = p.error == ParseError::kNone && (p.arp_op == 1 || p.arp_op == 2);
    if (!well_formed || p.arp_sha != binding_.mac) return DropReason::kSpoofGuard;
    return Unspecified(p.arp_spa) || Claim(p.arp_spa, now_s) ? DropReason::kNone : DropReason::kSpoofGuard;
  }
  if (p.error != ParseError::kNone) return DropReason::kMalformed;
  if (!p.ip) return DropReason::kNone;
  const bool icmp = p.has_l4 && p.tuple.proto == (p.v6 ? kProtoIcmp6 : kProtoIcmp);
  if (icmp && !binding_.router &&
      (p.v6 ? (p.icmp_type == 134 || p.icmp_type == 137) : p.icmp_type == 5)) {
    return DropReason::kRaGuard;
  }
  if (p.has_l4 && p.tuple.proto == kProtoUdp && !binding_.dhcp_server &&
      p.tuple.sport == (p.v6 ? 547 : 67)) {
    return DropReason::kDhcpGuard;
  }
  if (p.v6 && icmp && p.l4_len >= 24 && p.icmp_type == 136) {
    // A neighbour advertisement may only announce the VM's own address.
    const IpAddr target = IpAddr::FromV6Bytes(b.pkts[i].data + p.l4_offset + 8);
    if (!Claim(target, now_s)) return DropReason::kSpoofGuard;
  }
  if (Unspecified(p.tuple.src)) return DropReason::kNone;  // DHCP discover, duplicate address detection
  // Neighbour discovery from a real source teaches it.
  if (p.v6 && icmp && (p.icmp_type == 135 || p.icmp_type == 136)) {
    return Claim(p.tuple.src, now_s) ? DropReason::kNone : DropReason::kSpoofGuard;
  }
  return Permit(p.tuple.src, now_s) ? DropReason::kNone : DropReason::kSpoofGuard;
}

void PortSecurity::Process(FilterBatch& b) {
  Packet local;
  const uint32_t now_s = static_cast<uint32_t>(b.now_ns / 1000000000ull);
  if (b.dir == Direction::kIn) {
    if (!binding_.learn) return;
    for (uint16_t i = 0; i < b.count; i++) {
      const Packet& p = Parsed(b, i, &local);
      if (p.error == ParseError::kNone && p.has_l4 && !p.fragment) {
        LearnFromInbound(b.pkts[i].data, p, now_s);
      }
    }
    return;
  }
  for (uint16_t i = 0; i < b.count; i++) {
    const Packet& p = Parsed(b, i, &local);
    const DropReason why = Check(b, i, p, now_s);
    if (why == DropReason::kNone) continue;
    b.verdict[i] = Verdict::kDrop;
    b.reason[i] = why;
    if (why == DropReason::kSpoofGuard) {
      if (p.ethertype == kEthArp) {
        Log(b, i, p.arp_spa, p.arp_tpa, 0);
      } else {
        Log(b, i, p.tuple.src, p.tuple.dst, p.tuple.proto);
      }
    }
  }
}

}  // namespace palisade::fw
