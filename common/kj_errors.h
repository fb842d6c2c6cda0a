// How code running on a kj event loop (the control plane, the migration protocol) reports
// errors: a failed Status becomes the exception the caller sees, its description the Status's
// message (capnp carries it to the client).
// Thread-safety: free functions.
#pragma once

#include <string>

#include <capnp/blob.h>
#include <kj/exception.h>

#include "common/status.h"

namespace palisade {

// The exception a caller sees for `message` (to throw, or to reject a promise with).
inline kj::Exception Failure(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(message.c_str()));
}

[[noreturn]] inline void Fail(const std::string& message) { kj::throwFatalException(Failure(message)); }

inline void Check(const Status& s) {
  if (!s.ok()) Fail(s.message());
}

inline std::string Str(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

}  // namespace palisade
