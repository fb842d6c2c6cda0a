// JsonWriter: builds one JSON document in a string, compact (control replies) or indented two
// spaces a level (palisadectl --json). Objects, arrays, strings, numbers, booleans. Not
// thread-safe; one writer per reply.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace palisade {

class JsonWriter {
 public:
  explicit JsonWriter(bool indent = false) : indent_(indent) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Int(int64_t value);
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
  void End(char close);
  void NewLine();
  bool indent_;
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace palisade
