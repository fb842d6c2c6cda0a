// JsonWriter: builds one compact JSON document in a string. Enough for control replies:
// objects, arrays, strings, numbers, booleans. Not thread-safe; one writer per reply.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace palisade {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);

  // Shorthands for a key and its value.
  JsonWriter& Field(std::string_view key, std::string_view v) { return Key(key).String(v); }
  JsonWriter& Field(std::string_view key, const char* v) { return Key(key).String(v); }
  JsonWriter& Field(std::string_view key, uint64_t v) { return Key(key).Uint(v); }
  JsonWriter& Field(std::string_view key, bool v) { return Key(key).Bool(v); }

  const std::string& str() const { return out_; }

 private:
  void Separate();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace palisade
