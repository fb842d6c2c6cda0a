// conngen: TCP connection setups through a switch, for bench/switch_bench.py --setups.
//
// Two virtio-user ports (EAL --vdev, in order: the client, then the server) attach to the
// switch's two vhost-user ports. The client opens connections (SYN), the server answers
// (SYN/ACK), the client completes each (ACK) and closes it at once (RST): a stateful switch
// creates, establishes and closes one connection per four packets. It keeps no state per
// connection: every reply is built from the packet it answers. After --warmup seconds it prints
// "window", and after --seconds more one line of JSON: the connections completed in the window
// (ACKs the server received) and the packets each port sent and received. With --hold 1 it
// then waits for its standard input to close before its ports go down, so that the caller
// reads the switch's counters first (a vhost peer leaving prints on the switch's console).
//
// Usage: conngen EAL-ARGS -- [--seconds S] [--warmup S] [--window N] [--hold 1]
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr uint16_t kBurst = 32;
constexpr uint16_t kClient = 0, kServer = 1;
const rte_ether_addr kMac[2] = {{{0x02, 0, 0, 0, 0, 0x01}}, {{0x02, 0, 0, 0, 0, 0x02}}};
const uint32_t kIp[2] = {RTE_IPV4(10, 0, 0, 1), RTE_IPV4(10, 0, 0, 2)};

struct Frame {
  rte_ether_hdr eth;
  rte_ipv4_hdr ip;
  rte_tcp_hdr tcp;
};
static_assert(sizeof(Frame) == 54, "Ethernet, IPv4 and TCP headers back to back");

struct Counters {
  uint64_t syns = 0, synacks = 0, acks = 0, resets = 0, tx[2] = {}, rx[2] = {};
};

// A minimal TCP segment from port `from` to the other port's address.
rte_mbuf* Segment(rte_mempool* pool, int from, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                  uint8_t flags) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  auto* f = rte_pktmbuf_mtod(m, Frame*);
  std::memset(f, 0, 60);
  f->eth.src_addr = kMac[from];
  f->eth.dst_addr = kMac[1 - from];
  f->eth.ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  f->ip.version_ihl = RTE_IPV4_VHL_DEF;
  f->ip.total_length = rte_cpu_to_be_16(sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr));
  f->ip.time_to_live = 64;
  f->ip.next_proto_id = IPPROTO_TCP;
  f->ip.src_addr = rte_cpu_to_be_32(kIp[from]);
  f->ip.dst_addr = rte_cpu_to_be_32(kIp[1 - from]);
  f->ip.hdr_checksum = rte_ipv4_cksum(&f->ip);
  f->tcp.src_port = rte_cpu_to_be_16(sport);
  f->tcp.dst_port = rte_cpu_to_be_16(dport);
  f->tcp.sent_seq = rte_cpu_to_be_32(seq);
  f->tcp.recv_ack = rte_cpu_to_be_32(ack);
  f->tcp.data_off = 5 << 4;
  f->tcp.tcp_flags = flags;
  f->tcp.rx_win = rte_cpu_to_be_16(65535);
  f->tcp.cksum = rte_ipv4_udptcp_cksum(&f->ip, &f->tcp);
  m->data_len = m->pkt_len = 60;
  return m;
}

void Send(uint16_t port, rte_mbuf** pkts, uint16_t n, Counters& c) {
  uint16_t sent = 0;
  while (sent < n) {
    const uint16_t k = rte_eth_tx_burst(port, 0, pkts + sent, n - sent);
    if (k == 0) break;  // full: the rest are lost, as on a wire
    sent += k;
  }
  rte_pktmbuf_free_bulk(pkts + sent, n - sent);
  c.tx[port] += sent;
}

int Setup(uint16_t port, rte_mempool* pool) {
  rte_eth_conf conf{};
  if (rte_eth_dev_configure(port, 1, 1, &conf) < 0) return -1;
  if (rte_eth_rx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), nullptr, pool) < 0) return -1;
  if (rte_eth_tx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), nullptr) < 0) return -1;
  return rte_eth_dev_start(port);
}

}  // namespace

int main(int argc, char** argv) {
  const int eal = rte_eal_init(argc, argv);
  if (eal < 0 || rte_eth_dev_count_avail() < 2) {
    std::fprintf(stderr, "conngen: EAL with two --vdev ports (client, server) needed\n");
    return 2;
  }
  double seconds = 5, warmup = 2;
  unsigned window = 2048;
  bool hold = false;
  for (int i = eal + 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (a == "--warmup") warmup = std::atof(argv[i + 1]);
    else if (a == "--window") window = static_cast<unsigned>(std::atoi(argv[i + 1]));
    else if (a == "--hold") hold = std::atoi(argv[i + 1]) != 0;
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("conngen", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == nullptr || Setup(kClient, pool) < 0 || Setup(kServer, pool) < 0) {
    std::fprintf(stderr, "conngen: ports did not start\n");
    return 1;
  }
  const uint64_t hz = rte_get_tsc_hz();
  const uint64_t start = rte_get_tsc_cycles();
  const uint64_t window_at = start + static_cast<uint64_t>(warmup * static_cast<double>(hz));
  const uint64_t end_at = window_at + static_cast<uint64_t>(seconds * static_cast<double>(hz));
  Counters c, at_window;
  bool in_window = false;
  uint64_t forgive_at = start;
  uint16_t sport = 1024, dport = 1;
  rte_mbuf* rx[kBurst];
  rte_mbuf* tx[2 * kBurst];
  for (uint64_t now = start; now < end_at; now = rte_get_tsc_cycles()) {
    if (!in_window && now >= window_at) {
      in_window = true;
      at_window = c;
      std::printf("window\n");
      std::fflush(stdout);
    }
    // Lost SYNs or replies would hold the window shut: forgive them ten times a second.
    if (now >= forgive_at) {
      c.syns = c.synacks;
      forgive_at = now + hz / 10;
    }
    if (c.syns - c.synacks < window) {
      uint16_t n = 0;
      for (; n < kBurst; n++) {
        if (++sport == 0) sport = 1024;
        if (sport == 1024) dport = static_cast<uint16_t>(dport % 64 + 1);  // 64 x 64,512 tuples in turn
        const uint32_t isn = (uint32_t{sport} << 16 | dport) * 2654435761u;
        if ((tx[n] = Segment(pool, kClient, sport, dport, isn, 0, RTE_TCP_SYN_FLAG)) == nullptr) break;
      }
      c.syns += n;
      Send(kClient, tx, n, c);
    }
    // The server answers SYNs and counts the ACKs that complete them.
    uint16_t n = rte_eth_rx_burst(kServer, 0, rx, kBurst), out = 0;
    c.rx[kServer] += n;
    for (uint16_t i = 0; i < n; i++) {
      const auto* f = rte_pktmbuf_mtod(rx[i], const Frame*);
      if (rx[i]->data_len >= sizeof(Frame) && f->ip.next_proto_id == IPPROTO_TCP) {
        const uint8_t flags = f->tcp.tcp_flags;
        if (flags == RTE_TCP_SYN_FLAG) {
          const uint32_t seq = rte_be_to_cpu_32(f->tcp.sent_seq);
          rte_mbuf* m = Segment(pool, kServer, rte_be_to_cpu_16(f->tcp.dst_port), rte_be_to_cpu_16(f->tcp.src_port),
                                ~seq, seq + 1, RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG);
          if (m != nullptr) tx[out++] = m;
        } else if (flags == RTE_TCP_ACK_FLAG) {
          c.acks++;
        } else if (flags & RTE_TCP_RST_FLAG) {
          c.resets++;
        }
      }
    }
    rte_pktmbuf_free_bulk(rx, n);
    Send(kServer, tx, out, c);
    // The client completes each answered connection and closes it.
    n = rte_eth_rx_burst(kClient, 0, rx, kBurst);
    c.rx[kClient] += n;
    out = 0;
    for (uint16_t i = 0; i < n; i++) {
      const auto* f = rte_pktmbuf_mtod(rx[i], const Frame*);
      if (rx[i]->data_len >= sizeof(Frame) && f->ip.next_proto_id == IPPROTO_TCP &&
          f->tcp.tcp_flags == (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) {
        c.synacks++;
        const uint16_t sp = rte_be_to_cpu_16(f->tcp.dst_port), dp = rte_be_to_cpu_16(f->tcp.src_port);
        const uint32_t seq = rte_be_to_cpu_32(f->tcp.recv_ack), ack = rte_be_to_cpu_32(f->tcp.sent_seq) + 1;
        rte_mbuf* a = Segment(pool, kClient, sp, dp, seq, ack, RTE_TCP_ACK_FLAG);
        rte_mbuf* r = Segment(pool, kClient, sp, dp, seq, ack, RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG);
        if (a != nullptr) tx[out++] = a;
        if (r != nullptr) tx[out++] = r;
      }
    }
    rte_pktmbuf_free_bulk(rx, n);
    Send(kClient, tx, out, c);
  }
  const double t = static_cast<double>(rte_get_tsc_cycles() - window_at) / static_cast<double>(hz);
  std::printf("{\"connections\": %llu, \"seconds\": %.3f, \"resets\": %llu, \"tx\": %llu, \"rx\": %llu, \"tsc_hz\": %llu}\n",
              static_cast<unsigned long long>(c.acks - at_window.acks), t,
              static_cast<unsigned long long>(c.resets - at_window.resets),
              static_cast<unsigned long long>(c.tx[0] + c.tx[1] - at_window.tx[0] - at_window.tx[1]),
              static_cast<unsigned long long>(c.rx[0] + c.rx[1] - at_window.rx[0] - at_window.rx[1]),
              static_cast<unsigned long long>(hz));
  std::fflush(stdout);
  while (hold && std::getchar() != EOF) {
  }
  for (uint16_t p : {kClient, kServer}) {
    rte_eth_dev_stop(p);
    rte_eth_dev_close(p);
  }
  rte_eal_cleanup();
  return 0;
}
