#include "daemon/options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "daemon/eal.h"

namespace palisade {
namespace {

Status Parse(std::vector<std::string> args, Options* o) {
  args.insert(args.begin(), "palisaded");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return ParseOptions(static_cast<int>(args.size()), argv.data(), o);
}

TEST(OptionsTest, DefaultsFollowTheInstanceName) {
  Options o;
  ASSERT_TRUE(Parse({"--instance", "host-a"}, &o).ok());
  EXPECT_EQ(o.socket, "/run/palisade/host-a.sock");
  EXPECT_EQ(o.hugepages, HugepageMode::kAuto);
  EXPECT_EQ(o.cores.size(), 1u);
}

TEST(OptionsTest, AllOptions) {
  Options o;
  Status s = Parse({"--instance=h1", "--socket", "/tmp/h1.sock", "--cores", "0-1", "--hugepages",
                    "off", "--config", "/etc/p.conf", "--log-dir", "/tmp/log", "--memory", "256"},
                   &o);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(o.instance, "h1");
  EXPECT_EQ(o.socket, "/tmp/h1.sock");
  EXPECT_EQ(o.cores, (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(o.hugepages, HugepageMode::kOff);
  EXPECT_EQ(o.config, "/etc/p.conf");
  EXPECT_EQ(o.log_dir, "/tmp/log");
  EXPECT_EQ(o.memory_mb, 256u);
}

TEST(OptionsTest, BadArgumentsSayWhatIsWrong) {
  Options o;
  EXPECT_EQ(Parse({"--hugepages", "maybe"}, &o).message(),
            "--hugepages: 'maybe' is not auto, on or off");
  EXPECT_EQ(Parse({"--frobnicate"}, &o).message(), "unknown option '--frobnicate'");
  EXPECT_EQ(Parse({"--instance"}, &o).message(), "--instance needs a value");
  EXPECT_EQ(Parse({"--instance", "a/b"}, &o).message(),
            "--instance: 'a/b' must be 1-32 letters, digits, '-' or '_'");
  EXPECT_EQ(Parse({"stray"}, &o).message(), "unexpected argument 'stray'");
  EXPECT_EQ(Parse({"--memory", "12"}, &o).message(),
            "--memory: '12' is not a size in MB from 64 to 65536");
}

TEST(OptionsTest, AclAboveMbTakesASizeOrOff) {
  Options o;
  ASSERT_TRUE(Parse({}, &o).ok());
  EXPECT_EQ(o.acl_above_mb, 64u);
  ASSERT_TRUE(Parse({"--acl-above-mb", "8"}, &o).ok());
  EXPECT_EQ(o.acl_above_mb, 8u);
  ASSERT_TRUE(Parse({"--acl-above-mb", "off"}, &o).ok());
  EXPECT_EQ(o.acl_above_mb, 0u);
  EXPECT_EQ(Parse({"--acl-above-mb", "0"}, &o).message(),
            "--acl-above-mb: '0' is not a size in MB from 1 to 65536, or off");
}

TEST(OptionsTest, MetricsListenIsOffByDefaultAndTakesAddrPort) {
  Options o;
  ASSERT_TRUE(Parse({}, &o).ok());
  EXPECT_EQ(o.metrics_listen, "");
  for (const char* good : {"127.0.0.1:9464", "[::1]:9464", "*:1", "localhost:65535", "0.0.0.0:9464"}) {
    Status s = Parse({"--metrics-listen", good}, &o);
    ASSERT_TRUE(s.ok()) << good << ": " << s.message();
    EXPECT_EQ(o.metrics_listen, good);
  }
  for (const char* bad : {"9464", ":9464", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:http", "::1:9464", "[]:9464", "a b:1"}) {
    EXPECT_EQ(Parse({"--metrics-listen", bad}, &o).message(),
              std::string("--metrics-listen: '") + bad +
                  "' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or *:9464)")
        << bad;
  }
  EXPECT_EQ(Parse({"--metrics-listen"}, &o).message(), "--metrics-listen needs a value");
}

TEST(OptionsTest, CpuLists) {
  std::vector<unsigned> cpus;
  ASSERT_TRUE(ParseCpuList("3,0-1", 8, &cpus).ok());
  EXPECT_EQ(cpus, (std::vector<unsigned>{0, 1, 3}));
  EXPECT_FALSE(ParseCpuList("8", 8, &cpus).ok());
  EXPECT_FALSE(ParseCpuList("2-1", 8, &cpus).ok());
  EXPECT_FALSE(ParseCpuList("1,1", 8, &cpus).ok());
  EXPECT_FALSE(ParseCpuList("", 8, &cpus).ok());
  EXPECT_FALSE(ParseCpuList("a", 8, &cpus).ok());
}

TEST(OptionsTest, EalArgumentsKeepInstancesApartAndWorkWithoutHugepages) {
  Options o;
  ASSERT_TRUE(Parse({"--instance", "h2", "--cores", "1", "--memory", "256"}, &o).ok());
  std::vector<std::string> args = EalArguments(o, /*hugepages=*/false);
  auto has = [&](const std::string& a) { return std::find(args.begin(), args.end(), a) != args.end(); };
  EXPECT_TRUE(has("--file-prefix=palisade-h2"));
  EXPECT_TRUE(has("--no-huge"));
  EXPECT_TRUE(has("256"));
  EXPECT_FALSE(has("--in-memory")) << "EAL refuses --in-memory with --no-huge";
  args = EalArguments(o, /*hugepages=*/true);
  EXPECT_FALSE(std::find(args.begin(), args.end(), "--no-huge") != args.end());
}

}  // namespace
}  // namespace palisade
