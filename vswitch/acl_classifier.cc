#include "vswitch/acl_classifier.h"

#include <rte_acl.h>
#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <string>

namespace palisade {
namespace {

using fw::ClassifyKey;
using fw::FieldRanges;
using fw::Rule;
using fw::RuleFields;
using fw::u128;
using Range = std::pair<u128, u128>;

// What a lookup hands rte_acl: fields in network byte order, the first one a single byte (as
// rte_acl wants), the rest in groups of four bytes.
struct Key4 {
  uint8_t proto;
  uint8_t pad[3];
  uint32_t src, dst;
  uint16_t sport, dport;
};
struct Key6 {
  uint8_t proto;
  uint8_t pad[3];
  uint32_t src[4], dst[4];
  uint16_t sport, dport;
};

constexpr int kFields4 = 5, kFields6 = 11;
RTE_ACL_RULE_DEF(AclRule4, kFields4);
RTE_ACL_RULE_DEF(AclRule6, kFields6);

rte_acl_config Config(bool v6) {
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.max_size = AclClassifierEngine::kMaxBytes;
  auto def = [&](uint8_t type, uint8_t size, uint8_t input, uint32_t offset) {
    const uint32_t i = cfg.num_fields++;
    cfg.defs[i] = rte_acl_field_def{type, size, static_cast<uint8_t>(i), input, offset};
  };
  def(RTE_ACL_FIELD_TYPE_BITMASK, 1, 0, 0);
  if (!v6) {
    def(RTE_ACL_FIELD_TYPE_RANGE, 4, 1, offsetof(Key4, src));
    def(RTE_ACL_FIELD_TYPE_RANGE, 4, 2, offsetof(Key4, dst));
    def(RTE_ACL_FIELD_TYPE_RANGE, 2, 3, offsetof(Key4, sport));
    def(RTE_ACL_FIELD_TYPE_RANGE, 2, 3, offsetof(Key4, dport));
  } else {
    for (uint8_t w = 0; w < 4; w++) def(RTE_ACL_FIELD_TYPE_RANGE, 4, 1 + w, offsetof(Key6, src) + 4u * w);
    for (uint8_t w = 0; w < 4; w++) def(RTE_ACL_FIELD_TYPE_RANGE, 4, 5 + w, offsetof(Key6, dst) + 4u * w);
    def(RTE_ACL_FIELD_TYPE_RANGE, 2, 9, offsetof(Key6, sport));
    def(RTE_ACL_FIELD_TYPE_RANGE, 2, 9, offsetof(Key6, dport));
  }
  return cfg;
}

// Sorted, merged copy of `in`.
std::vector<Range> Merge(std::vector<Range> in) {
  std::sort(in.begin(), in.end());
  std::vector<Range> out;
  for (const Range& r : in) {
    if (!out.empty() && (out.back().second == ~u128{0} || r.first <= out.back().second + 1)) {
      out.back().second = std::max(out.back().second, r.second);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// The values of `f` inside [lo, hi], as disjoint ranges.
std::vector<Range> Within(const FieldRanges& f, u128 lo, u128 hi) {
  if (f.wild) return {{lo, hi}};
  std::vector<Range> in;
  for (auto [a, b] : f.ranges) {
    if (b < lo || a > hi) continue;
    in.push_back({std::max(a, lo), std::min(b, hi)});
  }
  in = Merge(std::move(in));
  if (!f.negate) return in;
  std::vector<Range> out;
  u128 next = lo;
  bool done = false;
  for (auto [a, b] : in) {
    if (a > next) out.push_back({next, a - 1});
    if (b == hi) {
      done = true;
      break;
    }
    next = b + 1;
  }
  if (!done) out.push_back({next, hi});
  return out;
}

// An IPv6 address range as rte_acl holds it: a range on each of the four 32-bit words.
using Box = std::array<std::pair<uint32_t, uint32_t>, 4>;
using Words = std::array<uint32_t, 4>;

Words WordsOf(u128 v) {
  return {static_cast<uint32_t>(v >> 96), static_cast<uint32_t>(v >> 64), static_cast<uint32_t>(v >> 32),
          static_cast<uint32_t>(v)};
}

// Boxes covering the addresses from `lo` to `hi` (their words from k on; words before k are
// fixed in `box`): at most seven for any range, where prefixes would take up to 254.
void Boxes(const Words& lo, const Words& hi, int k, Box box, std::vector<Box>* out) {
  constexpr uint32_t kMax = ~uint32_t{0};
  if (k == 4) {
    out->push_back(box);
    return;
  }
  if (lo[k] == hi[k]) {
    box[k] = {lo[k], lo[k]};
    Boxes(lo, hi, k + 1, box, out);
    return;
  }
  bool lo_min = true, hi_max = true;
  for (int j = k + 1; j < 4; j++) {
    lo_min &= lo[j] == 0;
    hi_max &= hi[j] == kMax;
  }
  uint32_t a = lo[k], b = hi[k];
  if (!lo_min) {  // the rest of lo's word: lo's tail up to the top
    box[k] = {a, a};
    Boxes(lo, Words{kMax, kMax, kMax, kMax}, k + 1, box, out);
    a++;
  }
  if (!hi_max) {  // the start of hi's word: from the bottom up to hi's tail
    box[k] = {b, b};
    Boxes(Words{}, hi, k + 1, box, out);
    b--;
  }
  if (a <= b) {  // whole words in between
    box[k] = {a, b};
    for (int j = k + 1; j < 4; j++) box[j] = {0, kMax};
    out->push_back(box);
  }
}

class AclClassifier final : public fw::Classifier {
 public:
  ~AclClassifier() override {
    for (rte_acl_ctx* c : ctx_) rte_acl_free(c);
  }

  int Lookup(const ClassifyKey& k) const override {
    rte_acl_ctx* ctx = ctx_[(k.v6 ? 2 : 0) | (k.in ? 1 : 0)];
    if (ctx == nullptr) return -1;
    uint32_t result = 0;
    if (!k.v6) {
      const Key4 key{k.proto, {}, rte_cpu_to_be_32(k.src.v4()), rte_cpu_to_be_32(k.dst.v4()),
                     rte_cpu_to_be_16(k.sport), rte_cpu_to_be_16(k.dport)};
      const uint8_t* data = reinterpret_cast<const uint8_t*>(&key);
      rte_acl_classify(ctx, &data, &result, 1, 1);
    } else {
      Key6 key{k.proto, {}, {}, {}, rte_cpu_to_be_16(k.sport), rte_cpu_to_be_16(k.dport)};
      const u128 s = k.src.value(), d = k.dst.value();
      for (int w = 0; w < 4; w++) {
        key.src[w] = rte_cpu_to_be_32(static_cast<uint32_t>(s >> (96 - 32 * w)));
        key.dst[w] = rte_cpu_to_be_32(static_cast<uint32_t>(d >> (96 - 32 * w)));
      }
      const uint8_t* data = reinterpret_cast<const uint8_t*>(&key);
      rte_acl_classify(ctx, &data, &result, 1, 1);
    }
    return static_cast<int>(result) - 1;
  }

  size_t memory_bytes() const override { return bytes_; }
  const char* engine() const override { return "rte_acl"; }

  rte_acl_ctx* ctx_[4] = {};  // [v6 << 1 | in]
  size_t bytes_ = 0;
};

size_t HeapBytes() {
  size_t total = 0;
  for (unsigned s = 0; s < RTE_MAX_NUMA_NODES; s++) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(static_cast<int>(s), &st) == 0) total += st.heap_allocsz_bytes;
  }
  return total;
}

// One context's rules: every rule that applies to (v6, in), expanded.
class Expander {
 public:
  Expander(bool v6, bool in) : v6_(v6), in_(in) {}

  // False when the expansion grows past `budget` rules.
  bool Add(const Rule& r, const RuleFields& f, uint32_t index, size_t* budget) {
    if (!AppliesToSome(r)) return true;
    // IPv4 keys live at ::ffff:0:0/96 (IpAddr); IPv6 ones anywhere.
    const u128 lo = v6_ ? 0 : u128{0xffff} << 32, hi = v6_ ? ~u128{0} : lo | 0xffffffffu;
    std::vector<Range> src = Within(f.src, lo, hi), dst = Within(f.dst, lo, hi);
    if (v6_) {
      src = WithoutMapped(std::move(src));
      dst = WithoutMapped(std::move(dst));
    }
    const std::vector<Range> sp = Within(f.sport, 0, 0xffff), dp = Within(f.dport, 0, 0xffff);
    std::vector<Box> src_p, dst_p;
    if (v6_) {
      for (auto [a, b] : src) Boxes(WordsOf(a), WordsOf(b), 0, Box{}, &src_p);
      for (auto [a, b] : dst) Boxes(WordsOf(a), WordsOf(b), 0, Box{}, &dst_p);
    }
    const size_t nsrc = v6_ ? src_p.size() : src.size(), ndst = v6_ ? dst_p.size() : dst.size();
    const size_t n = nsrc * ndst * sp.size() * dp.size();
    if (n > *budget) return false;
    *budget -= n;
    const uint32_t priority = RTE_ACL_MAX_PRIORITY - index;
    for (size_t a = 0; a < nsrc; a++) {
      for (size_t b = 0; b < ndst; b++) {
        for (const Range& s : sp) {
          for (const Range& d : dp) {
            if (v6_) {
              AclRule6 x{};
              Head(r, index, priority, &x.data, &x.field[0]);
              Set(src_p[a], &x.field[1]);
              Set(dst_p[b], &x.field[5]);
              Ports(s, d, &x.field[9]);
              rules6_.push_back(x);
            } else {
              AclRule4 x{};
              Head(r, index, priority, &x.data, &x.field[0]);
              x.field[1].value.u32 = static_cast<uint32_t>(src[a].first);
              x.field[1].mask_range.u32 = static_cast<uint32_t>(src[a].second);
              x.field[2].value.u32 = static_cast<uint32_t>(dst[b].first);
              x.field[2].mask_range.u32 = static_cast<uint32_t>(dst[b].second);
              Ports(s, d, &x.field[3]);
              rules4_.push_back(x);
            }
          }
        }
      }
    }
    return true;
  }

  // Null and ok when no rule applies here.
  Status Build(rte_acl_ctx** out) {
    *out = nullptr;
    const size_t n = v6_ ? rules6_.size() : rules4_.size();
    if (n == 0) return Status::Ok();
    static std::atomic<uint64_t> serial{0};
    // rte_acl_create() hands back an existing context of the same name: every one is unique.
    const std::string name = "fw" + std::to_string(serial++);
    const rte_acl_param param{name.c_str(), SOCKET_ID_ANY,
                              static_cast<uint32_t>(v6_ ? RTE_ACL_RULE_SZ(kFields6) : RTE_ACL_RULE_SZ(kFields4)),
                              static_cast<uint32_t>(n)};
    rte_acl_ctx* ctx = rte_acl_create(&param);
    if (ctx == nullptr) return Status::Internal("rte_acl_create: " + std::string(rte_strerror(rte_errno)));
    const auto* rules = v6_ ? reinterpret_cast<const rte_acl_rule*>(rules6_.data())
                            : reinterpret_cast<const rte_acl_rule*>(rules4_.data());
    int rc = rte_acl_add_rules(ctx, rules, static_cast<uint32_t>(n));
    if (rc == 0) {
      const rte_acl_config cfg = Config(v6_);
      rc = rte_acl_build(ctx, &cfg);
    }
    if (rc != 0) {
      rte_acl_free(ctx);
      return Status::Internal("rte_acl_build: " + std::string(rte_strerror(-rc)));
    }
    // The rules are kept only for a rebuild, which never comes: a change builds anew.
    rte_acl_reset_rules(ctx);
    *out = ctx;
    return Status::Ok();
  }

 private:
  bool AppliesToSome(const Rule& r) const {
    return fw::RuleAppliesTo(r, in_, v6_, r.proto == fw::kAny ? 0 : r.proto);
  }

  // IPv6 packets with IPv4-mapped addresses never reach a classifier (they are malformed), so
  // the IPv6 contexts leave out ranges wholly inside ::ffff:0:0/96: an IPv4 member of a set
  // costs them nothing.
  static std::vector<Range> WithoutMapped(std::vector<Range> in) {
    const u128 lo = u128{0xffff} << 32, hi = lo | 0xffffffffu;
    std::erase_if(in, [&](const Range& r) { return r.first >= lo && r.second <= hi; });
    return in;
  }

  static void Head(const Rule& r, uint32_t index, uint32_t priority, rte_acl_rule_data* d, rte_acl_field* proto) {
    d->category_mask = 1;
    d->priority = static_cast<int32_t>(priority);
    d->userdata = index + 1;
    if (r.proto != fw::kAny) {
      proto->value.u8 = static_cast<uint8_t>(r.proto);
      proto->mask_range.u8 = 0xff;
    }
  }

  static void Ports(const Range& s, const Range& d, rte_acl_field* f) {
    f[0].value.u16 = static_cast<uint16_t>(s.first);
    f[0].mask_range.u16 = static_cast<uint16_t>(s.second);
    f[1].value.u16 = static_cast<uint16_t>(d.first);
    f[1].mask_range.u16 = static_cast<uint16_t>(d.second);
  }

  static void Set(const Box& box, rte_acl_field* f) {
    for (int w = 0; w < 4; w++) {
      f[w].value.u32 = box[w].first;
      f[w].mask_range.u32 = box[w].second;
    }
  }

  bool v6_, in_;
  std::vector<AclRule4> rules4_;
  std::vector<AclRule6> rules6_;
};

}  // namespace

Status AclClassifierEngine::Build(const std::vector<Rule>& rules, const std::vector<RuleFields>& fields,
                                  std::unique_ptr<const fw::Classifier>* out) const {
  size_t negated = 0;
  for (const RuleFields& f : fields) negated += (!f.src.wild && f.src.negate) || (!f.dst.wild && f.dst.negate);
  if (negated > kMaxNegated) {
    return Status::Unavailable("rte_acl: " + std::to_string(negated) + " rules with negated addresses (it builds well with at most " +
                               std::to_string(kMaxNegated) + ")");
  }
  std::vector<Expander> slots;
  slots.reserve(4);
  size_t budget = kMaxExpanded;
  for (int slot = 0; slot < 4; slot++) {
    Expander& e = slots.emplace_back(slot & 2, slot & 1);
    for (size_t i = 0; i < rules.size(); i++) {
      if (!e.Add(rules[i], fields[i], static_cast<uint32_t>(i), &budget)) {
        return Status::Unavailable("rte_acl: the table expands to more than " + std::to_string(kMaxExpanded) + " of its rules");
      }
    }
  }
  // The four contexts build side by side (TBB, on the control thread's CPUs).
  auto c = std::make_unique<AclClassifier>();
  Status status[4];
  const size_t heap0 = HeapBytes();
  tbb::parallel_for(0, 4, [&](int slot) { status[slot] = slots[static_cast<size_t>(slot)].Build(&c->ctx_[slot]); });
  const size_t heap1 = HeapBytes();
  c->bytes_ = heap1 > heap0 ? heap1 - heap0 : 0;  // what else the heap gave or took meanwhile counts too
  for (const Status& s : status) {
    if (!s.ok()) return s;
  }
  *out = std::move(c);
  return Status::Ok();
}

}  // namespace palisade
