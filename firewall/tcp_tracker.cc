#include "firewall/tcp_tracker.h"

namespace palisade::fw {
namespace {

constexpr uint32_t kMaxAckWindow = 66000;  // slack for ACKs of not-yet-seen data

bool Before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
bool After(uint32_t a, uint32_t b) { return Before(b, a); }

uint32_t SegmentEnd(const Packet& p) {
  return p.seq + p.payload_len + ((p.tcp_flags & tcp::kSyn) ? 1 : 0) +
         ((p.tcp_flags & tcp::kFin) ? 1 : 0);
}

// First packet seen from this side: its window and end define the side.
void InitPeer(TcpPeer& s, const Packet& p) {
  const bool syn = p.tcp_flags & tcp::kSyn;
  s.flags = (syn && p.wscale != 0xff) ? kPeerWscale : 0;
  s.scale = (syn && p.wscale != 0xff) ? p.wscale : 0;
  s.end = SegmentEnd(p);
  const uint32_t win = syn ? p.window : uint32_t{p.window} << s.scale;
  s.maxwin = win == 0 ? 1 : win;
  s.maxend = s.end + s.maxwin;
}

// The window checks; on success the peers learn from the segment. `liberal`: the segment is
// accepted (and learned from) even outside the window, unless it is a RST.
bool InWindow(TcpPeer& sender, TcpPeer& receiver, const Packet& p, bool liberal) {
  const bool syn = p.tcp_flags & tcp::kSyn;
  const uint32_t seq = p.seq;
  const uint32_t end = SegmentEnd(p);
  const uint32_t win = syn ? p.window : uint32_t{p.window} << sender.scale;
  const bool has_ack = p.tcp_flags & tcp::kAck;
  uint32_t ack = has_ack ? p.ack : receiver.end;
  if (receiver.maxwin == 0) {
    // The other side has not been seen (mid-stream pickup): trust this ACK as its position.
    receiver.end = receiver.maxend = ack;
  }
  const uint32_t maxack = sender.maxwin > kMaxAckWindow ? sender.maxwin : kMaxAckWindow;
  const bool ok = !After(seq, sender.maxend) &&                             // not beyond the window
                  After(end, sender.end - receiver.maxwin - 1) &&          // not too old
                  (!has_ack || (!After(ack, receiver.end) &&               // acks nothing unsent
                                After(ack, receiver.end - maxack - 1)));  // nor ancient data
  if (!ok && !(liberal && !(p.tcp_flags & tcp::kRst))) return false;
  if (sender.maxwin < win) sender.maxwin = win;
  if (After(end, sender.end)) sender.end = end;
  if (has_ack) {
    const uint32_t edge = ack + (win == 0 ? 1 : win);
    if (After(edge, receiver.maxend)) receiver.maxend = edge;
  }
  if (receiver.maxwin == 0) receiver.maxwin = 1;
  return true;
}

TcpOpen Start(ConnEntry& c, TcpPeer* peer, const Packet& p, bool strict) {
  const uint8_t f = p.tcp_flags;
  if (f & tcp::kRst) return TcpOpen::kRefused;
  if ((f & (tcp::kSyn | tcp::kAck)) == tcp::kSyn) {
    InitPeer(peer[0], p);
    c.state = ConnState::kSynSent;
    return TcpOpen::kOpened;
  }
  if (strict || (f & tcp::kSyn)) return TcpOpen::kRefused;  // a SYN+ACK opens nothing
  InitPeer(peer[0], p);
  c.state = ConnState::kEstablished;
  c.flags |= kConnLiberal;
  return TcpOpen::kPickedUp;
}

TcpTrack Update(ConnEntry& c, TcpPeer* peer, int dir, const Packet& p) {
  TcpPeer& sender = peer[dir];
  TcpPeer& receiver = peer[1 - dir];
  const uint8_t f = p.tcp_flags;
  const bool syn = f & tcp::kSyn, ack = f & tcp::kAck, fin = f & tcp::kFin, rst = f & tcp::kRst;

  // A fresh SYN from the originator after the connection ended reuses the ports.
  if (syn && !ack && dir == 0 && (c.state == ConnState::kTimeWait || c.state == ConnState::kClosed)) {
    return TcpTrack::kReopen;
  }
  if (c.state == ConnState::kSynSent) {
    if (dir == 0) {
      // A retransmitted SYN, or a new attempt with another initial sequence: the originator
      // starts over from it, so that the SYN/ACK answering it fits.
      if (!syn || ack || rst) return TcpTrack::kOutOfWindow;
      InitPeer(sender, p);
      return TcpTrack::kValid;
    }
    if (rst) {
      // A refusal must acknowledge the SYN exactly.
      if (!ack || p.ack != peer[0].end) return TcpTrack::kOutOfWindow;
      c.state = ConnState::kClosed;
      c.reason = CloseReason::kRst;
      return TcpTrack::kValid;
    }
    if (!(syn && ack) || p.ack != peer[0].end) return TcpTrack::kOutOfWindow;
    InitPeer(sender, p);
    if (!(peer[0].flags & kPeerWscale) || !(sender.flags & kPeerWscale)) {
      peer[0].scale = sender.scale = 0;  // scaling only when both sides offer it
    }
    receiver.maxend = p.ack + (sender.maxwin == 0 ? 1 : sender.maxwin);
    c.state = ConnState::kSynRecv;
    return TcpTrack::kValid;
  }
  if (syn && !ack && !rst) {
    // The originator retransmitting its SYN (same initial sequence) while the SYN/ACK is on
    // its way; any other SYN on a live connection is a new one on the same ports.
    const bool retransmit = c.state == ConnState::kSynRecv && dir == 0 && p.seq + 1 == sender.end;
    if (!retransmit) return TcpTrack::kIgnoredSyn;
  }
  if (sender.maxwin == 0) {
    // First packet from this side of a picked-up connection.
    InitPeer(sender, p);
  } else if (!InWindow(sender, receiver, p, c.flags & kConnLiberal)) {
    return TcpTrack::kOutOfWindow;
  }

  if (rst) {
    c.state = ConnState::kClosed;
    c.reason = CloseReason::kRst;
    return TcpTrack::kValid;
  }
  if (fin) sender.flags |= kPeerFin;
  switch (c.state) {
    case ConnState::kSynRecv:
      if (dir == 0 && ack && !syn) c.state = (fin ? ConnState::kFinWait : ConnState::kEstablished);
      break;
    case ConnState::kEstablished:
      if (fin) c.state = ConnState::kFinWait;
      break;
    case ConnState::kFinWait:
    case ConnState::kCloseWait:
      if ((peer[0].flags & kPeerFin) && (peer[1].flags & kPeerFin)) {
        c.state = ConnState::kTimeWait;
        c.reason = CloseReason::kFin;
      } else if (!fin && !(sender.flags & kPeerFin)) {
        c.state = ConnState::kCloseWait;  // the side that has not closed goes on sending
      }
      break;
    default: break;
  }
  return TcpTrack::kValid;
}

}  // namespace

// The entry keeps its sides packed; the state machine works on them whole.
TcpOpen TcpStart(ConnEntry& c, const Packet& p, bool strict) {
  TcpPeer peer[2] = {};
  const TcpOpen r = Start(c, peer, p, strict);
  c.set_peer(0, peer[0]);
  c.set_peer(1, peer[1]);
  return r;
}

TcpTrack TcpUpdate(ConnEntry& c, int dir, const Packet& p) {
  TcpPeer peer[2] = {c.peer(0), c.peer(1)};
  const TcpTrack r = Update(c, peer, dir, p);
  c.set_peer(0, peer[0]);
  c.set_peer(1, peer[1]);
  return r;
}

}  // namespace palisade::fw
