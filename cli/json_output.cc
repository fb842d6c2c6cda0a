#include "cli/json_output.h"

#include <kj/debug.h>

#include <cstdio>

#include "rpc/palisade.capnp.h"

namespace palisade::cli {
namespace {

enum class Id { kNone, kHex, kDecimal };

// The 64-bit fields that name something rather than count it, spelled as the text views spell
// them: getflows's first column, cluster status's lease.
Id IdOf(capnp::StructSchema::Field field) {
  static const capnp::StructSchema::Field kFlowId =
      capnp::Schema::from<rpc::Flow>().getFieldByName("flowId");
  static const capnp::StructSchema::Field kLease =
      capnp::Schema::from<rpc::ClusterStatus>().getFieldByName("lease");
  if (field == kFlowId) return Id::kHex;
  if (field == kLease) return Id::kDecimal;
  return Id::kNone;
}

bool InUnion(capnp::StructSchema::Field field) {
  return field.getProto().getDiscriminantValue() != capnp::schema::Field::NO_DISCRIMINANT;
}

void WriteValue(JsonWriter& w, capnp::DynamicValue::Reader v) {
  switch (v.getType()) {
    case capnp::DynamicValue::BOOL:
      w.Bool(v.as<bool>());
      break;
    case capnp::DynamicValue::INT:
      w.Int(v.as<int64_t>());
      break;
    case capnp::DynamicValue::UINT:
      w.Uint(v.as<uint64_t>());
      break;
    case capnp::DynamicValue::TEXT: {
      capnp::Text::Reader t = v.as<capnp::Text>();
      w.String({t.cStr(), t.size()});
      break;
    }
    case capnp::DynamicValue::LIST:
      w.BeginArray();
      for (capnp::DynamicValue::Reader e : v.as<capnp::DynamicList>()) WriteValue(w, e);
      w.EndArray();
      break;
    case capnp::DynamicValue::STRUCT:
      WriteJson(w, v.as<capnp::DynamicStruct>());
      break;
    default:
      KJ_FAIL_REQUIRE("a result field of a type --json does not write",
                      static_cast<int>(v.getType()));
  }
}

std::string IdText(Id id, capnp::DynamicValue::Reader v) {
  if (id == Id::kDecimal) {
    return v.getType() == capnp::DynamicValue::INT ? std::to_string(v.as<int64_t>())
                                                   : std::to_string(v.as<uint64_t>());
  }
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v.as<uint64_t>()));
  return hex;
}

void Describe(capnp::Type type, const std::string& path, const std::string& note,
              std::vector<JsonField>* out) {
  switch (type.which()) {
    case capnp::schema::Type::BOOL:
      out->push_back({path, "bool", note});
      break;
    case capnp::schema::Type::INT8:
    case capnp::schema::Type::INT16:
    case capnp::schema::Type::INT32:
    case capnp::schema::Type::INT64:
    case capnp::schema::Type::UINT8:
    case capnp::schema::Type::UINT16:
    case capnp::schema::Type::UINT32:
    case capnp::schema::Type::UINT64:
      out->push_back({path, "number", note});
      break;
    case capnp::schema::Type::TEXT:
      out->push_back({path, "string", note});
      break;
    case capnp::schema::Type::LIST:
      Describe(type.asList().getElementType(), path + "[]", note, out);
      break;
    case capnp::schema::Type::STRUCT: {
      const capnp::StructSchema s = type.asStruct();
      std::string members;
      for (capnp::StructSchema::Field f : s.getUnionFields()) {
        members +=
            (members.empty() ? "one of " : ", ") + std::string(f.getProto().getName().cStr());
      }
      for (capnp::StructSchema::Field f : s.getFields()) {
        const std::string name = f.getProto().getName().cStr();
        const Id id = IdOf(f);
        if (id != Id::kNone) {
          out->push_back(
              {path + "." + name, "string", id == Id::kHex ? "id, 16 hex digits" : "id, decimal"});
        } else {
          Describe(f.getType(), path + "." + name, InUnion(f) ? members : "", out);
        }
      }
      break;
    }
    default:
      KJ_FAIL_REQUIRE("a result field of a type --json does not write",
                      static_cast<int>(type.which()));
  }
}

}  // namespace

void WriteJson(JsonWriter& w, capnp::DynamicStruct::Reader result) {
  w.BeginObject();
  for (capnp::StructSchema::Field f : result.getSchema().getFields()) {
    if (InUnion(f)) {  // only the member in use
      KJ_IF_MAYBE (active, result.which()) {
        if (!(*active == f)) continue;
      } else {
        continue;
      }
    }
    w.Key(f.getProto().getName().cStr());
    const Id id = IdOf(f);
    if (id != Id::kNone) {
      w.String(IdText(id, result.get(f)));
    } else {
      WriteValue(w, result.get(f));
    }
  }
  w.EndObject();
}

std::vector<JsonField> DescribeJson(capnp::StructSchema result, const std::string& prefix) {
  std::vector<JsonField> out;
  Describe(result, prefix, "", &out);
  return out;
}

}  // namespace palisade::cli
