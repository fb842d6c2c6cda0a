// FaultPoint: where the crash tests kill palisaded at an exact moment of a long operation.
// With PALISADE_FAULT=NAME in the environment the process SIGKILLs itself when it reaches the
// point NAME (NAME:N: the Nth time). Unset, a point costs one comparison. Points sit on control
// paths only (saves, migration steps), never in the datapath. Thread-safe.
#pragma once

namespace palisade {

void FaultPoint(const char* name);

}  // namespace palisade
