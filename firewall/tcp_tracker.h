// TCP connection tracking: the state machine (SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT,
// CLOSE_WAIT, TIME_WAIT, CLOSED) and sequence-window checks, so that a blind RST or an
// out-of-window segment can neither end a connection nor ride on it.
//
// Pure functions over one ConnEntry; the caller serialises access.
#pragma once

#include "firewall/conn_entry.h"
#include "firewall/packet.h"

namespace palisade::fw {

enum class TcpOpen {
  kOpened,      // a SYN: SYN_SENT
  kPickedUp,    // mid-stream, loose: ESTABLISHED with windows learned from here on
  kRefused,     // not a valid first packet (strict rule without SYN, or RST, or SYN+ACK strict)
};

// Initialises c (direction 0 = this packet's) for a new connection; a pickup marks it
// kConnLiberal.
TcpOpen TcpStart(ConnEntry& c, const Packet& p, bool strict);

enum class TcpTrack {
  kValid,       // fits the connection; state updated
  kOutOfWindow, // does not fit: drop it, the connection is unchanged
  kReopen,      // a new SYN on a closed/time-wait connection: caller starts afresh
  kIgnoredSyn,  // a SYN on a live connection (a peer that lost it and reuses its port): pass
                // it unchanged; if a SYN/ACK acknowledging it comes back, the caller replaces
                // the entry (a blind SYN alone changes nothing)
};

// Checks and applies one packet travelling in direction dir (0 original, 1 reply).
TcpTrack TcpUpdate(ConnEntry& c, int dir, const Packet& p);

}  // namespace palisade::fw
