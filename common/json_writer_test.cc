// JsonWriter (common/json_writer.h): compact and indented documents.
#include "common/json_writer.h"

#include <gtest/gtest.h>

namespace palisade {
namespace {

void Document(JsonWriter& w) {
  w.BeginObject().Field("ok", true).Key("n").BeginArray().Uint(1).Int(-2).EndArray();
  w.Key("empty").BeginObject().EndObject().Key("none").BeginArray().EndArray();
  w.Field("s", "a\"b\n").EndObject();
}

TEST(JsonWriter, Compact) {
  JsonWriter w;
  Document(w);
  EXPECT_EQ(w.str(), "{\"ok\":true,\"n\":[1,-2],\"empty\":{},\"none\":[],\"s\":\"a\\\"b\\n\"}");
}

TEST(JsonWriter, Indented) {
  JsonWriter w(/*indent=*/true);
  Document(w);
  EXPECT_EQ(w.str(),
            "{\n"
            "  \"ok\": true,\n"
            "  \"n\": [\n"
            "    1,\n"
            "    -2\n"
            "  ],\n"
            "  \"empty\": {},\n"
            "  \"none\": [],\n"
            "  \"s\": \"a\\\"b\\n\"\n"
            "}");
}

}  // namespace
}  // namespace palisade
