// FaultPoint: where the crash tests kill palisaded at an exact moment of a long operation.
// With PALISADE_FAULT=NAME in the environment the process SIGKILLs itself when it reaches the
// point NAME (NAME:N: the Nth time). A point's name says what it stands between, e.g.
// `replace-config`: a replacement of the file `config`, written and synced, not yet renamed. Unset, a point costs one comparison. Points sit on control
// paths only (saves, migration steps), never in the datapath. Thread-safe.
#pragma once

#include <string_view>

namespace palisade {

void FaultPoint(std::string_view name);

}  // namespace palisade
