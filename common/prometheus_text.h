// PrometheusText: builds one scrape in the Prometheus text exposition format, version 0.0.4
// (what palisaded serves at /metrics). Format only: it knows nothing of the switch.
//
//   PrometheusText out;
//   out.Family("palisade_port_rx_packets_total", MetricType::kCounter, "Packets received.");
//   out.Sample({{"port", "vm-web"}}, uint64_t{42});
//   if (!out.status().ok()) ...;  // a misuse: nothing of the scrape should be served
//   serve(out.text());
//
// It writes HELP and TYPE before a family's samples, escapes HELP text and label values as the
// format says (backslash, double quote, newline; invalid UTF-8 becomes U+FFFD, which Prometheus
// would otherwise refuse), prints integers exactly and doubles in the shortest form that reads
// back the same, whole ones as integers (NaN, +Inf, -Inf spelled as Prometheus parses them). What
// would make the scrape fail at Prometheus is refused rather than written: an invalid metric or
// label name, a family written twice, a sample before any family or with a suffix its type does not
// have, a label name repeated in a sample, the same series twice. The first such misuse is kept in
// status() and later calls write nothing.
//
// Thread-compatible value type: one writer per scrape.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

#include "common/status.h"

namespace palisade {

enum class MetricType { kCounter, kGauge, kSummary, kHistogram, kUntyped };

struct MetricLabel {
  std::string_view name;
  std::string_view value;
};

class PrometheusText {
 public:
  // Starts a family: its HELP and TYPE lines. Samples until the next Family belong to it.
  void Family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the current family, named the family's name + suffix: "" for counters,
  // gauges and untyped; "", "_sum" or "_count" for summaries; "_bucket", "_sum" or "_count" for
  // histograms. Integers (bool too) are printed exactly, floating-point values shortest.
  template <typename T>
  requires std::integral<T> || std::floating_point<T>
  void Sample(std::initializer_list<MetricLabel> labels, T value, std::string_view suffix = "") {
    if constexpr (std::floating_point<T>) {
      Write(labels, suffix, FormatDouble(static_cast<double>(value)));
    } else if constexpr (std::signed_integral<T>) {
      Write(labels, suffix, std::to_string(static_cast<int64_t>(value)));
    } else {
      Write(labels, suffix, std::to_string(static_cast<uint64_t>(value)));
    }
  }

  const std::string& text() const { return out_; }
  const Status& status() const { return status_; }

  // The format's pieces, for tests and for callers that check names up front.
  static bool ValidMetricName(std::string_view name);  // [a-zA-Z_:][a-zA-Z0-9_:]*
  static bool ValidLabelName(std::string_view name);   // [a-zA-Z_][a-zA-Z0-9_]*, not __*
  static std::string EscapeLabelValue(std::string_view value);
  static std::string EscapeHelp(std::string_view help);
  static std::string FormatDouble(double value);

 private:
  void Write(std::initializer_list<MetricLabel> labels, std::string_view suffix,
             const std::string& value);
  void Refuse(std::string why);

  std::string out_;
  Status status_;
  std::string family_;  // empty: no family started
  MetricType type_ = MetricType::kUntyped;
  std::set<std::string, std::less<>> families_;  // every family name written
  std::set<std::string, std::less<>> series_;    // the current family's series
};

}  // namespace palisade
