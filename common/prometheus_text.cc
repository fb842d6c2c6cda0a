#include "common/prometheus_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

namespace palisade {
namespace {

bool Alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool Digit(char c) { return c >= '0' && c <= '9'; }

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kSummary:
      return "summary";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kUntyped:
      break;
  }
  return "untyped";
}

bool SuffixAllowed(MetricType type, std::string_view suffix) {
  if (type == MetricType::kSummary) return suffix.empty() || suffix == "_sum" || suffix == "_count";
  if (type == MetricType::kHistogram)
    return suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
  return suffix.empty();
}

// The length of the valid UTF-8 sequence at s[i], or 0 (overlong forms, surrogates and code
// points past U+10FFFF are invalid, as Go's utf8.ValidString says).
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the bounds of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (i + n > s.size() || b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; k++) {
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  }
  return n;
}

// Escapes backslash and newline (and the double quote when `quote`); invalid UTF-8 becomes
// U+FFFD, one per bad byte.
std::string Escape(std::string_view s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      i++;
      continue;
    }
    if (n == 1) {
      const char c = s[i];
      if (c == '\\')
        out += "\\\\";
      else if (c == '\n')
        out += "\\n";
      else if (c == '"' && quote)
        out += "\\\"";
      else
        out += c;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace

bool PrometheusText::ValidMetricName(std::string_view name) {
  if (name.empty() || !(Alpha(name[0]) || name[0] == ':')) return false;
  for (char c : name) {
    if (!(Alpha(c) || Digit(c) || c == ':')) return false;
  }
  return true;
}

bool PrometheusText::ValidLabelName(std::string_view name) {
  if (name.empty() || !Alpha(name[0]) || name.starts_with("__")) return false;
  for (char c : name) {
    if (!(Alpha(c) || Digit(c))) return false;
  }
  return true;
}

std::string PrometheusText::EscapeLabelValue(std::string_view value) { return Escape(value, true); }

std::string PrometheusText::EscapeHelp(std::string_view help) { return Escape(help, false); }

std::string PrometheusText::FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Whole numbers as integers (2000000, not 2e+06), where a double holds them exactly.
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<int64_t>(value));
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

void PrometheusText::Refuse(std::string why) {
  if (status_.ok()) status_ = Status::Internal("metrics: " + std::move(why));
}

void PrometheusText::Family(std::string_view name, MetricType type, std::string_view help) {
  if (!status_.ok()) return;
  if (!ValidMetricName(name)) return Refuse("invalid metric name '" + std::string(name) + "'");
  if (!families_.emplace(name).second)
    return Refuse("family '" + std::string(name) + "' written twice");
  family_ = name;
  type_ = type;
  series_.clear();
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += EscapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += TypeName(type);
  out_ += '\n';
}

void PrometheusText::Write(std::initializer_list<MetricLabel> labels, std::string_view suffix,
                           const std::string& value) {
  if (!status_.ok()) return;
  if (family_.empty()) return Refuse("a sample before any family");
  if (!SuffixAllowed(type_, suffix)) {
    return Refuse("'" + family_ + std::string(suffix) + "': no such sample in a " +
                  TypeName(type_));
  }
  std::string series = family_;
  series += suffix;
  std::vector<std::string> pairs;  // sorted, they name the series whatever the order given
  if (labels.size() > 0) {
    series += '{';
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (!ValidLabelName(it->name))
        return Refuse("invalid label name '" + std::string(it->name) + "'");
      for (auto prev = labels.begin(); prev != it; ++prev) {
        if (prev->name == it->name)
          return Refuse("label '" + std::string(it->name) + "' given twice");
      }
      std::string pair = std::string(it->name) + "=\"" + EscapeLabelValue(it->value) + '"';
      if (it != labels.begin()) series += ',';
      series += pair;
      pairs.push_back(std::move(pair));
    }
    series += '}';
  }
  std::sort(pairs.begin(), pairs.end());
  std::string key(suffix);
  for (const std::string& pair : pairs) key += "," + pair;
  if (!series_.insert(std::move(key)).second) return Refuse("series " + series + " written twice");
  out_ += series;
  out_ += ' ';
  out_ += value;
  out_ += '\n';
}

}  // namespace palisade
