// TableCompiler on a real Switch (DPDK's EAL without hugepages, workers never started) and a
// libev control loop on a thread of its own, as palisaded runs them: a recompile asked for
// while a file is on its way waits for it and then compiles the file with the new addresses;
// a dropped table lets a waiting recompile start.
#include "vswitch/table_compiler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "vswitch/control_plane_fixture.h"

namespace palisade {
namespace {

constexpr const char* kPort = "a";
const std::string kFile0 = "ruleset zero {\n  rule 1 at 1 in protocol tcp from addrset web to any port 80 accept;\n}\n"
                           "addrset web {\n  vm web-01,\n}\n";
const std::string kFile1 = "ruleset one {\n  rule 2 at 1 in protocol tcp from addrset web to any port 443 accept;\n}\n";

class TableCompilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("palisade-tctest-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(testenv::ControlPlaneSwitch(&sw_).ok());
    PortSpec spec;
    spec.name = kPort;
    spec.path = (dir_ / "a.sock").string();
    ASSERT_TRUE(sw_->AddPort(spec).ok());
    ASSERT_TRUE(sw_->AttachFilter(kPort, FilterSpec{2, "sfw", FailurePolicy::kFailClosed}).ok());
    ASSERT_TRUE(sw_->LoadRules(kPort, kFile0).ok());
    control_ = std::make_unique<testenv::ControlLoopThread>();
    compiler_ = std::make_unique<TableCompiler>(sw_.get(), control_->queue());
  }

  void TearDown() override {
    OnControl([this] { compiler_.reset(); });
    control_.reset();
    sw_.reset();
    std::filesystem::remove_all(dir_);
  }

  void OnControl(std::function<void()> f) { control_->Run(std::move(f)); }

  // A done callback that records `what` and its status.
  TableCompiler::Done Record(const std::string& what) {
    return [this, what](const Status& s) {
      std::lock_guard lock(mu_);
      events_.push_back(what + (s.ok() ? "" : ": " + s.message()));
    };
  }
  std::vector<std::string> WaitFor(size_t n) {
    for (int i = 0; i < 3000; i++) {
      {
        std::lock_guard lock(mu_);
        if (events_.size() >= n) return events_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard lock(mu_);
    return events_;
  }

  std::string Text() {
    std::string rules, sets;
    OnControl([&] {
      EXPECT_TRUE(sw_->GetRules(kPort, &rules, nullptr, nullptr).ok());
      EXPECT_TRUE(sw_->GetAddrSets(kPort, &sets).ok());
    });
    return rules + sets;
  }

  std::shared_ptr<Switch::PreparedRules> Prepare(const std::string& text) {
    auto p = std::make_shared<Switch::PreparedRules>();
    EXPECT_TRUE(sw_->PrepareRules(kPort, text, p.get()).ok());
    return p;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Switch> sw_;
  std::unique_ptr<testenv::ControlLoopThread> control_;
  std::unique_ptr<TableCompiler> compiler_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

TEST_F(TableCompilerTest, ARecompileWaitsForTheFileOnItsWayAndThenTakesTheNewAddresses) {
  EXPECT_NE(Text().find("vm web-01,  # now: no addresses"), std::string::npos) << Text();
  OnControl([&] {
    compiler_->Load(kPort, Prepare(kFile1), Record("file"));
    EXPECT_TRUE(compiler_->FileLoading(kPort));
    // web-01's addresses arrive while the file compiles: its table is asked for again.
    std::vector<std::string> stale;
    sw_->SetClusterAddresses({{"web-01", {fw::IpAddr::V4(0xc0000201)}}}, {}, &stale);
    EXPECT_EQ(stale, std::vector<std::string>{kPort});
    compiler_->Recompile(kPort, Record("recompile"));
    EXPECT_TRUE(compiler_->FileLoading(kPort)) << "the file is not dropped for the recompile";
  });
  EXPECT_EQ(WaitFor(2), (std::vector<std::string>{"file", "recompile"}));
  const std::string text = Text();
  EXPECT_NE(text.find("ruleset one"), std::string::npos) << text;
  EXPECT_NE(text.find("port 443"), std::string::npos) << text;
  EXPECT_NE(text.find("vm web-01,  # now: 192.0.2.1"), std::string::npos) << text;
}

TEST_F(TableCompilerTest, ARecompileWaitingForADroppedTableStartsThen) {
  OnControl([&] {
    compiler_->Load(kPort, Prepare(kFile1), Record("file"));
    sw_->SetClusterAddresses({{"web-01", {fw::IpAddr::V4(0xc0000202)}}}, {}, nullptr);
    compiler_->Recompile(kPort, Record("recompile"));
    compiler_->Forget(kPort);  // the file's table was set in place meanwhile, say
    EXPECT_FALSE(compiler_->FileLoading(kPort));
  });
  EXPECT_EQ(WaitFor(1), std::vector<std::string>{"recompile"});
  const std::string text = Text();
  EXPECT_NE(text.find("ruleset zero"), std::string::npos) << "the dropped file is not installed: " << text;
  EXPECT_NE(text.find("vm web-01,  # now: 192.0.2.2"), std::string::npos) << text;
}

}  // namespace
}  // namespace palisade

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!palisade::testenv::InitTestEal("tctest")) return 1;
  const int rc = RUN_ALL_TESTS();
  palisade::testenv::CleanupTestEal();
  return rc;
}
