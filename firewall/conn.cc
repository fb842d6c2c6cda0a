#include "firewall/conn.h"

#include <cstring>

namespace palisade::fw {

const char* ConnStateName(ConnState s) {
  switch (s) {
    case ConnState::kFree: return "FREE";
    case ConnState::kSynSent: return "SYN_SENT";
    case ConnState::kSynRecv: return "SYN_RECV";
    case ConnState::kEstablished: return "EST";
    case ConnState::kFinWait: return "FIN_WAIT";
    case ConnState::kCloseWait: return "CLOSE_WAIT";
    case ConnState::kTimeWait: return "TIME_WAIT";
    case ConnState::kClosed: return "CLOSED";
    case ConnState::kNew: return "NEW";
    case ConnState::kMultiple: return "MULTIPLE";
    case ConnState::kWideEnds: return "WIDE_ENDS";
    case ConnState::kGone: return "GONE";
  }
  return "?";
}

const char* CloseReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kNone: return "NONE";
    case CloseReason::kFin: return "FIN";
    case CloseReason::kRst: return "RST";
    case CloseReason::kTimeout: return "TIMEOUT";
    case CloseReason::kRuleChange: return "RULE_CHANGE";
    case CloseReason::kFlush: return "FLUSH";
    case CloseReason::kReopen: return "REOPEN";
  }
  return "?";
}

ConnKey MakeKey(const Tuple& t, bool* src_is_lo) {
  ConnKey k;
  MakeKey(t, &k, src_is_lo);
  return k;
}

Tuple Conn::OrigTuple() const {
  Tuple t;
  t.proto = proto;
  if (flags & kConnOrigIsLo) {
    t.src = lo;
    t.dst = hi;
    t.sport = lo_port;
    t.dport = hi_port;
  } else {
    t.src = hi;
    t.dst = lo;
    t.sport = hi_port;
    t.dport = lo_port;
  }
  return t;
}

}  // namespace palisade::fw
