// palisadectl --json: RPC results as JSON that scripts can use, and the description of that JSON
// that `palisadectl help json` prints, both from the results' Cap'n Proto schema.
//
// Every field is written, a null text or list as "" or [], and of a union only its member in
// use. Integers are JSON numbers in exact decimal, 64-bit ones too: consumers that read numbers
// as doubles (jq, JavaScript) are exact only up to 2^53, past which they round to 16 significant
// digits, harmless for a quantity. Identifiers are never rounded: the 64-bit fields that are ids
// (a flow's flowId, the cluster lease) are strings, spelled as the text views spell them.
//
// Pure functions; thread-safe.
#pragma once

#include <capnp/dynamic.h>

#include <string>
#include <vector>

#include "common/json_writer.h"

namespace palisade::cli {

// Writes `result` as one JSON object.
void WriteJson(JsonWriter& w, capnp::DynamicStruct::Reader result);

// A value the JSON of a result holds: its jq path (".ports[].rxPackets"; arrays are "[]"
// steps), its type (number, string or bool) and a note (ids, union members). The key is in
// every object on the path, but a union member only when in use.
struct JsonField {
  std::string path, type, note;
};

// The values of `result`'s JSON, in the order they are written, under `prefix`.
std::vector<JsonField> DescribeJson(capnp::StructSchema result, const std::string& prefix = "");

}  // namespace palisade::cli
