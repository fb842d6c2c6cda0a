#include "firewall/classifier.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <unordered_map>

namespace palisade::fw {

// Builds the per-field interval vectors and de-duplicates identical vectors across fields.
class ClassifierBuilder {
 public:
  ClassifierBuilder(BitVectorClassifier* c, size_t nrules, size_t max_bytes) : c_(c), max_bytes_(max_bytes) {
    c->nrules_ = nrules;
    c->nwords_ = (nrules + 63) / 64;
    if (c->nwords_ == 0) c->nwords_ = 1;
    c->nsummary_ = (c->nwords_ + 63) / 64;
  }

  // Cuts the field at every boundary and gives each interval its vector, sweeping the
  // intervals in order with one vector that changes where a rule's range begins or ends (no
  // vector per interval is ever held but the interned, distinct ones).
  void BuildField(const std::vector<RuleFields>& rules, FieldRanges RuleFields::*which, u128 max,
                  BitVectorClassifier::Field* f) {
    if (over()) return;
    std::vector<u128> points = {0};
    for (const RuleFields& rule : rules) {
      for (auto [lo, hi] : (rule.*which).ranges) {
        points.push_back(lo);
        if (hi < max) points.push_back(hi + 1);
      }
    }
    std::sort(points.begin(), points.end());
    points.erase(std::unique(points.begin(), points.end()), points.end());
    const size_t n = points.size();

    // Every interval starts from the wildcard rules (negated ones included); inside a range a
    // rule's bit is set (negated: cleared). A rule's ranges may overlap: count them.
    std::vector<uint64_t> cur(c_->nwords_, 0);
    for (size_t r = 0; r < rules.size(); r++) {
      const FieldRanges& c = rules[r].*which;
      if (c.wild || c.negate) cur[r / 64] |= uint64_t{1} << (r % 64);
    }
    struct Event {
      uint32_t at;    // interval index
      uint32_t rule;
      int32_t delta;  // a range begins (+1) or ends (-1)
    };
    std::vector<Event> events;
    for (size_t r = 0; r < rules.size(); r++) {
      const FieldRanges& c = rules[r].*which;
      if (c.wild) continue;
      for (auto [lo, hi] : c.ranges) {
        const auto a = static_cast<uint32_t>(std::lower_bound(points.begin(), points.end(), lo) - points.begin());
        const auto b = static_cast<uint32_t>(std::upper_bound(points.begin(), points.end(), hi) - points.begin());
        events.push_back({a, static_cast<uint32_t>(r), 1});
        if (b < n) events.push_back({b, static_cast<uint32_t>(r), -1});
      }
    }
    std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) { return x.at < y.at; });
    std::vector<int32_t> inside(rules.size(), 0);
    f->starts = std::move(points);
    f->vec_of.resize(n);
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
      for (; e < events.size() && events[e].at == i; e++) {
        const uint32_t r = events[e].rule;
        inside[r] += events[e].delta;
        const uint64_t bit = uint64_t{1} << (r % 64);
        if ((inside[r] > 0) != (rules[r].*which).negate) {
          cur[r / 64] |= bit;
        } else {
          cur[r / 64] &= ~bit;
        }
      }
      f->vec_of[i] = Intern(cur.data());
      if (over()) return;
    }
  }

  void Direct(BitVectorClassifier::Field* f, size_t size) {
    f->direct.resize(size);
    size_t i = 0;
    for (size_t v = 0; v < size; v++) {
      while (i + 1 < f->starts.size() && f->starts[i + 1] <= v) i++;
      f->direct[v] = f->vec_of[i];
    }
  }

  // Whether the vectors outgrew max_bytes (the build is then abandoned).
  bool over() const { return (c_->words_.size() + c_->summary_.size()) * sizeof(uint64_t) > max_bytes_; }

  // The id of a vector equal to `words`, stored once: by hash, compared in place.
  uint32_t Intern(const uint64_t* words) {
    const size_t W = c_->nwords_;
    uint64_t h = W;
    for (size_t w = 0; w < W; w++) h = (h ^ words[w]) * 0x9e3779b97f4a7c15ull + (h >> 29);
    auto [first, last] = ids_.equal_range(h);
    for (auto it = first; it != last; ++it) {
      if (std::memcmp(&c_->words_[size_t{it->second} * W], words, W * sizeof(uint64_t)) == 0) return it->second;
    }
    const auto id = static_cast<uint32_t>(c_->words_.size() / W);
    ids_.emplace(h, id);
    c_->words_.insert(c_->words_.end(), words, words + W);
    const size_t at = c_->summary_.size();
    c_->summary_.resize(at + c_->nsummary_, 0);
    for (size_t w = 0; w < W; w++) {
      if (words[w]) c_->summary_[at + w / 64] |= uint64_t{1} << (w % 64);
    }
    return id;
  }

 private:
  BitVectorClassifier* c_;
  size_t max_bytes_;
  std::unordered_multimap<uint64_t, uint32_t> ids_;  // hash of a vector -> its id
};

namespace {

std::atomic<const ClassifierEngine*> large_engine{nullptr};
std::atomic<size_t> bitvector_max_bytes{0};
std::function<void(const std::string&)> engine_warn;  // set before any table is built

Status AddressConstraint(const Rule& r, const Endpoint& e, const ResolvedSets& sets,
                         FieldRanges* c) {
  if (e.kind == Endpoint::Kind::kAny) return Status::Ok();
  c->wild = false;
  c->negate = e.negate;
  if (e.kind == Endpoint::Kind::kIp) {
    c->ranges.push_back({e.prefix.first(), e.prefix.last()});
    return Status::Ok();
  }
  auto it = sets.find(e.set);
  if (it == sets.end()) {
    return Status::NotFound("rule " + std::to_string(r.id) + " at " + std::to_string(r.pos) +
                            " names address set '" + e.set + "', which is not defined");
  }
  for (const IpPrefix& p : it->second) c->ranges.push_back({p.first(), p.last()});
  // An empty set matches nothing (negated: everything): a range-less non-wild constraint.
  return Status::Ok();
}

FieldRanges PortConstraint(const Rule& r, const Endpoint& e, bool is_source) {
  FieldRanges c;
  if (r.proto == 1 || r.proto == 58) {
    const int v = is_source ? r.icmp_type : r.icmp_code;
    if (v != kAny) {
      c.wild = false;
      c.ranges.push_back({static_cast<u128>(v), static_cast<u128>(v)});
    }
    return c;
  }
  if (!e.ports.empty()) {
    c.wild = false;
    for (const PortRange& p : e.ports) c.ranges.push_back({p.lo, p.hi});
  }
  return c;
}

}  // namespace

bool RuleAppliesTo(const Rule& r, bool in, bool v6, int proto) {
  const bool dir_ok = in ? r.dir != RuleDir::kOut : r.dir != RuleDir::kIn;
  const bool fam_ok = r.family == Family::kAny || (r.family == Family::kInet6) == v6;
  return dir_ok && fam_ok && (r.proto == kAny || r.proto == proto);
}

void SetLargeTableEngine(const ClassifierEngine* engine, size_t max_bytes,
                         std::function<void(const std::string&)> warn) {
  bitvector_max_bytes = max_bytes;
  engine_warn = std::move(warn);
  large_engine = engine;
}

Status Classifier::Build(const std::vector<Rule>& rules, const ResolvedSets& sets,
                         std::unique_ptr<const Classifier>* out) {
  std::vector<RuleFields> fields(rules.size());
  for (size_t i = 0; i < rules.size(); i++) {
    const Rule& r = rules[i];
    if (Status s = AddressConstraint(r, r.src, sets, &fields[i].src); !s.ok()) return s;
    if (Status s = AddressConstraint(r, r.dst, sets, &fields[i].dst); !s.ok()) return s;
    fields[i].sport = PortConstraint(r, r.src, true);
    fields[i].dport = PortConstraint(r, r.dst, false);
  }
  if (const ClassifierEngine* engine = large_engine; engine != nullptr) {
    // Half the most the vectors could take: a table of hosts repeats about every other vector
    // (the gaps between them), so above the budget even then, trying them only wastes time
    // (at 30,000 host rules, 40% of a whole bit-vector build before giving up).
    const bool hopeless = BitVectorClassifier::MaxBytes(fields) / 2 > bitvector_max_bytes;
    if (!hopeless && (*out = BitVectorClassifier::Build(fields, rules, bitvector_max_bytes))) return Status::Ok();
    const Status s = engine->Build(rules, fields, out);
    if (s.ok()) return Status::Ok();
    if (engine_warn) {
      engine_warn("a rule table of " + std::to_string(rules.size()) + " rules is classified by bit vectors over " +
                  std::to_string(bitvector_max_bytes >> 20) + " MB: " + s.message());
    }
  }
  *out = BitVectorClassifier::Build(fields, rules, SIZE_MAX);
  return Status::Ok();
}

size_t BitVectorClassifier::MaxBytes(const std::vector<RuleFields>& fields) {
  // Every interval of every field may hold a vector of its own, and so may each of the 1,024
  // (direction, family, protocol) keys.
  size_t vectors = 1024;
  for (FieldRanges RuleFields::*which : {&RuleFields::src, &RuleFields::dst, &RuleFields::sport, &RuleFields::dport}) {
    std::vector<u128> points = {0};  // where intervals start, as BuildField cuts them
    for (const RuleFields& rule : fields) {
      for (auto [lo, hi] : (rule.*which).ranges) {
        points.push_back(lo);
        if (hi != ~u128{0}) points.push_back(hi + 1);
      }
    }
    std::sort(points.begin(), points.end());
    vectors += static_cast<size_t>(std::unique(points.begin(), points.end()) - points.begin());
  }
  const size_t words = std::max<size_t>(1, (fields.size() + 63) / 64);
  return vectors * (words + (words + 63) / 64) * sizeof(uint64_t);
}

std::unique_ptr<const Classifier> BitVectorClassifier::Build(const std::vector<RuleFields>& fields,
                                                             const std::vector<Rule>& rules, size_t max_bytes) {
  std::unique_ptr<BitVectorClassifier> c(new BitVectorClassifier());
  ClassifierBuilder b(c.get(), rules.size(), max_bytes);
  const u128 kMaxAddr = ~u128{0};
  b.BuildField(fields, &RuleFields::src, kMaxAddr, &c->src_);
  b.BuildField(fields, &RuleFields::dst, kMaxAddr, &c->dst_);
  b.BuildField(fields, &RuleFields::sport, 0xffff, &c->sport_);
  b.BuildField(fields, &RuleFields::dport, 0xffff, &c->dport_);
  if (b.over()) return nullptr;
  b.Direct(&c->sport_, 65536);
  b.Direct(&c->dport_, 65536);

  // Direction, family and protocol: an exact table of 2 x 2 x 256 keys.
  c->misc_.resize(1024);
  std::vector<uint64_t> vec(c->nwords_);
  for (int in = 0; in < 2; in++) {
    for (int v6 = 0; v6 < 2; v6++) {
      for (int proto = 0; proto < 256; proto++) {
        std::fill(vec.begin(), vec.end(), 0);
        for (size_t i = 0; i < rules.size(); i++) {
          if (RuleAppliesTo(rules[i], in, v6, proto)) vec[i / 64] |= uint64_t{1} << (i % 64);
        }
        c->misc_[(in << 9) | (v6 << 8) | proto] = b.Intern(vec.data());
      }
    }
  }
  if (b.over()) return nullptr;
  return c;
}

uint32_t BitVectorClassifier::Field::Find(u128 v) const {
  // The last interval whose start is <= v (starts[0] == 0).
  size_t lo = 0, hi = starts.size();
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (starts[mid] <= v) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return vec_of[lo];
}

int BitVectorClassifier::Lookup(const ClassifyKey& k) const {
  if (nrules_ == 0) return -1;
  const uint32_t ids[5] = {
      misc_[(uint32_t{k.in} << 9) | (uint32_t{k.v6} << 8) | k.proto],
      sport_.direct[k.sport],
      dport_.direct[k.dport],
      src_.Find(k.src.value()),
      dst_.Find(k.dst.value()),
  };
  const uint64_t* w[5];
  const uint64_t* s[5];
  for (int f = 0; f < 5; f++) {
    w[f] = &words_[ids[f] * nwords_];
    s[f] = &summary_[ids[f] * nsummary_];
  }
  for (size_t sw = 0; sw < nsummary_; sw++) {
    uint64_t cand = s[0][sw] & s[1][sw] & s[2][sw] & s[3][sw] & s[4][sw];
    while (cand) {
      const size_t word = sw * 64 + static_cast<size_t>(__builtin_ctzll(cand));
      const uint64_t hit = w[0][word] & w[1][word] & w[2][word] & w[3][word] & w[4][word];
      if (hit) return static_cast<int>(word * 64 + static_cast<size_t>(__builtin_ctzll(hit)));
      cand &= cand - 1;
    }
  }
  return -1;
}

size_t BitVectorClassifier::memory_bytes() const {
  return words_.size() * 8 + summary_.size() * 8 +
         (src_.starts.size() + dst_.starts.size()) * (sizeof(u128) + 4) +
         (sport_.direct.size() + dport_.direct.size() + misc_.size()) * 4;
}

}  // namespace palisade::fw
