#include "common/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace palisade {
namespace {

TEST(PrometheusText, FamilyWithHelpTypeAndSamples) {
  PrometheusText out;
  out.Family("palisade_port_rx_packets_total", MetricType::kCounter,
             "Packets received from the port.");
  out.Sample({{"port", "vm-web"}}, uint64_t{42});
  out.Sample({{"port", "vm-db"}}, uint64_t{0});
  out.Family("palisade_worker_cycles_per_packet", MetricType::kGauge, "Busy cycles per packet.");
  out.Sample({{"worker", "0"}}, 181.5);
  out.Family("palisade_build_info", MetricType::kGauge, "The build.");
  out.Sample({{"version", "0.1.0"}}, 1);
  out.Family("process_start_time_seconds", MetricType::kGauge, "Start time.");
  out.Sample({}, 1764064931.25);
  ASSERT_TRUE(out.status().ok()) << out.status().message();
  EXPECT_EQ(out.text(),
            "# HELP palisade_port_rx_packets_total Packets received from the port.\n"
            "# TYPE palisade_port_rx_packets_total counter\n"
            "palisade_port_rx_packets_total{port=\"vm-web\"} 42\n"
            "palisade_port_rx_packets_total{port=\"vm-db\"} 0\n"
            "# HELP palisade_worker_cycles_per_packet Busy cycles per packet.\n"
            "# TYPE palisade_worker_cycles_per_packet gauge\n"
            "palisade_worker_cycles_per_packet{worker=\"0\"} 181.5\n"
            "# HELP palisade_build_info The build.\n"
            "# TYPE palisade_build_info gauge\n"
            "palisade_build_info{version=\"0.1.0\"} 1\n"
            "# HELP process_start_time_seconds Start time.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds 1764064931.25\n");
}

TEST(PrometheusText, SeveralLabelsInTheOrderGiven) {
  PrometheusText out;
  out.Family("palisade_port_dropped_packets_total", MetricType::kCounter, "Drops.");
  out.Sample({{"port", "vm-a"}, {"reason", "SpoofGuard"}}, uint64_t{3});
  out.Sample({{"port", "vm-a"}, {"reason", "tx-full"}}, uint64_t{0});
  ASSERT_TRUE(out.status().ok());
  EXPECT_NE(out.text().find(
                "palisade_port_dropped_packets_total{port=\"vm-a\",reason=\"SpoofGuard\"} 3\n"),
            std::string::npos);
}

TEST(PrometheusText, LabelValuesAreEscaped) {
  EXPECT_EQ(PrometheusText::EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(PrometheusText::EscapeLabelValue("a\"b"), "a\\\"b");
  EXPECT_EQ(PrometheusText::EscapeLabelValue("a\\b"), "a\\\\b");
  EXPECT_EQ(PrometheusText::EscapeLabelValue("a\nb"), "a\\nb");
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\\\"\n"), "\\\\\\\"\\n");
  // Other control characters and tabs are allowed as they are.
  EXPECT_EQ(PrometheusText::EscapeLabelValue("a\tb"), "a\tb");
  PrometheusText out;
  out.Family("m", MetricType::kGauge, "h");
  out.Sample({{"port", "we\"ird\\na\nme"}}, 1);
  EXPECT_EQ(out.text(), "# HELP m h\n# TYPE m gauge\nm{port=\"we\\\"ird\\\\na\\nme\"} 1\n");
}

TEST(PrometheusText, HelpEscapesBackslashAndNewlineButNotQuotes) {
  EXPECT_EQ(PrometheusText::EscapeHelp("say \"hi\"\\\nbye"), "say \"hi\"\\\\\\nbye");
}

TEST(PrometheusText, InvalidUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(PrometheusText::EscapeLabelValue("caf\xc3\xa9"), "caf\xc3\xa9");    // é, valid
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xe2\x82\xac"), "\xe2\x82\xac");  // €
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xf0\x9f\x90\xa7"), "\xf0\x9f\x90\xa7");
  const std::string bad = "\xef\xbf\xbd";
  EXPECT_EQ(PrometheusText::EscapeLabelValue("a\xff"
                                             "b"),
            "a" + bad + "b");
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xc3"), bad);                      // truncated
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xc0\xaf"), bad + bad);            // overlong '/'
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xed\xa0\x80"), bad + bad + bad);  // surrogate
  EXPECT_EQ(PrometheusText::EscapeLabelValue("\xf4\x90\x80\x80"),
            bad + bad + bad + bad);  // > U+10FFFF
  EXPECT_EQ(PrometheusText::EscapeHelp("x\x80"), "x" + bad);
}

TEST(PrometheusText, Values) {
  EXPECT_EQ(PrometheusText::FormatDouble(0.0), "0");
  EXPECT_EQ(PrometheusText::FormatDouble(1.5), "1.5");
  EXPECT_EQ(PrometheusText::FormatDouble(0.1), "0.1");
  EXPECT_EQ(PrometheusText::FormatDouble(-2.25), "-2.25");
  EXPECT_EQ(PrometheusText::FormatDouble(2e6), "2000000");
  EXPECT_EQ(PrometheusText::FormatDouble(-3.0), "-3");
  EXPECT_EQ(PrometheusText::FormatDouble(1e21), "1e+21");
  EXPECT_EQ(PrometheusText::FormatDouble(2.5e-7), "2.5e-07");
  EXPECT_EQ(PrometheusText::FormatDouble(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(PrometheusText::FormatDouble(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(PrometheusText::FormatDouble(std::nan("")), "NaN");
  PrometheusText out;
  out.Family("m", MetricType::kCounter, "h");
  out.Sample({{"k", "max"}}, std::numeric_limits<uint64_t>::max());  // exact, not 1.8e19
  out.Sample({{"k", "neg"}}, int64_t{-1});
  out.Sample({{"k", "bool"}}, true);
  EXPECT_EQ(out.text(),
            "# HELP m h\n# TYPE m counter\n"
            "m{k=\"max\"} 18446744073709551615\nm{k=\"neg\"} -1\nm{k=\"bool\"} 1\n");
}

TEST(PrometheusText, Names) {
  for (const char* good : {"a", "palisade_port_rx_packets_total", "_x", "ns:sub:metric", "A9"}) {
    EXPECT_TRUE(PrometheusText::ValidMetricName(good)) << good;
  }
  for (const char* bad : {"", "9a", "a-b", "a b", "a.b", "é"}) {
    EXPECT_FALSE(PrometheusText::ValidMetricName(bad)) << bad;
  }
  for (const char* good : {"port", "_reason", "le", "a1"}) {
    EXPECT_TRUE(PrometheusText::ValidLabelName(good)) << good;
  }
  for (const char* bad : {"", "1a", "a:b", "a-b", "__name__", "__x"}) {
    EXPECT_FALSE(PrometheusText::ValidLabelName(bad)) << bad;
  }
}

TEST(PrometheusText, SummaryAndHistogramSuffixes) {
  PrometheusText out;
  out.Family("palisade_migration_final_pause_seconds", MetricType::kSummary, "Pauses.");
  out.Sample({}, 0.00025, "_sum");
  out.Sample({}, 1, "_count");
  out.Family("h_seconds", MetricType::kHistogram, "A histogram.");
  out.Sample({{"le", "0.1"}}, 1, "_bucket");
  out.Sample({{"le", "+Inf"}}, 2, "_bucket");
  out.Sample({}, 0.3, "_sum");
  out.Sample({}, 2, "_count");
  ASSERT_TRUE(out.status().ok()) << out.status().message();
  EXPECT_NE(out.text().find("# TYPE palisade_migration_final_pause_seconds summary\n"
                            "palisade_migration_final_pause_seconds_sum 0.00025\n"
                            "palisade_migration_final_pause_seconds_count 1\n"),
            std::string::npos);
  EXPECT_NE(out.text().find("h_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
}

// Each misuse is refused with a message, and nothing more is written after it.
TEST(PrometheusText, MisuseIsRefused) {
  struct Case {
    const char* what;
    void (*write)(PrometheusText&);
    const char* message;
  };
  const Case cases[] = {
      {"bad metric name", [](PrometheusText& o) { o.Family("port-rx", MetricType::kCounter, "h"); },
       "invalid metric name 'port-rx'"},
      {"family twice",
       [](PrometheusText& o) {
         o.Family("m", MetricType::kGauge, "h");
         o.Family("m", MetricType::kGauge, "h");
       },
       "family 'm' written twice"},
      {"sample first", [](PrometheusText& o) { o.Sample({}, 1); }, "a sample before any family"},
      {"bad label",
       [](PrometheusText& o) {
         o.Family("m", MetricType::kGauge, "h");
         o.Sample({{"the-port", "a"}}, 1);
       },
       "invalid label name 'the-port'"},
      {"reserved label",
       [](PrometheusText& o) {
         o.Family("m", MetricType::kGauge, "h");
         o.Sample({{"__name__", "a"}}, 1);
       },
       "invalid label name '__name__'"},
      {"label twice",
       [](PrometheusText& o) {
         o.Family("m", MetricType::kGauge, "h");
         o.Sample({{"port", "a"}, {"port", "b"}}, 1);
       },
       "label 'port' given twice"},
      {"series twice",
       [](PrometheusText& o) {
         o.Family("m", MetricType::kGauge, "h");
         o.Sample({{"port", "a"}, {"dir", "in"}}, 1);
         o.Sample({{"dir", "in"}, {"port", "a"}}, 2);
       },
       "series m{dir=\"in\",port=\"a\"} written twice"},
      {"suffix on a counter",
       [](PrometheusText& o) {
         o.Family("m_total", MetricType::kCounter, "h");
         o.Sample({}, 1, "_sum");
       },
       "'m_total_sum': no such sample in a counter"},
      {"bare histogram sample",
       [](PrometheusText& o) {
         o.Family("h", MetricType::kHistogram, "h");
         o.Sample({}, 1);
       },
       "'h': no such sample in a histogram"},
  };
  for (const Case& c : cases) {
    PrometheusText out;
    c.write(out);
    ASSERT_FALSE(out.status().ok()) << c.what;
    EXPECT_EQ(out.status().message(), std::string("metrics: ") + c.message) << c.what;
    const std::string before = out.text();
    out.Family("later", MetricType::kGauge, "h");
    out.Sample({}, 1);
    EXPECT_EQ(out.text(), before) << c.what << ": nothing is written after a misuse";
    EXPECT_EQ(out.status().message(), std::string("metrics: ") + c.message)
        << c.what << ": the first kept";
  }
}

TEST(PrometheusText, SameLabelsInAnotherFamilyOrSuffixAreFine) {
  PrometheusText out;
  out.Family("a_total", MetricType::kCounter, "h");
  out.Sample({{"port", "p"}}, 1);
  out.Family("b_total", MetricType::kCounter, "h");
  out.Sample({{"port", "p"}}, 1);
  out.Family("s", MetricType::kSummary, "h");
  out.Sample({{"port", "p"}}, 1, "_sum");
  out.Sample({{"port", "p"}}, 1, "_count");
  EXPECT_TRUE(out.status().ok()) << out.status().message();
}

}  // namespace
}  // namespace palisade
