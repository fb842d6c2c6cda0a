// What durability costs (daemon/state_store.h), in-process on the real Switch (EAL without
// hugepages, workers not started), files on this machine's disk:
//  - a configuration change answered only once it is saved: `port add` + `port del`, and a
//    `setrules` of a 10,000-rule table, with the save (export, write, fsync, rename, directory
//    fsync) against the same change without it, beside 20 other ports with 100-rule tables;
//  - the restart's restore of 100,000 and 1,000,000 connections (configuration, then the
//    connections re-checked): after a crash, from the segments the filters kept in /dev/shm,
//    and after a clean stop, from the state file that stop wrote (and the stop's save), against
//    importing the same port from memory (the floor any restart must stand on); and what
//    keeping the table in a segment costs an import against private memory.
// Medians of the repetitions; ratios durable / without.
#include <rte_eal.h>
#include <pthread.h>
#include <sched.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <thread>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "daemon/state_store.h"
#include "firewall/conn_fixture.h"
#include "vswitch/switch.h"

namespace palisade {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Ms(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "durability_bench: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

std::string Rules(int n) {
  std::string text = "ruleset t {\n";
  for (int i = 0; i < n - 1; i++) {
    text += "  rule " + std::to_string(i + 1) + " at " + std::to_string(i + 1) + " out protocol tcp from any to ip 10." +
            std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) +
            " port " + std::to_string(1000 + i % 50000) + " accept;\n";
  }
  text += "  rule " + std::to_string(n) + " at " + std::to_string(n) +
          " out protocol udp from any to any port 53 accept;\n}\n";
  return text;
}

PortSpec Spec(const std::filesystem::path& dir, const std::string& name) {
  PortSpec s;
  s.name = name;
  s.path = dir / (name + ".sock");
  return s;
}

void Run(const std::filesystem::path& dir) {
  constexpr int kReps = 30;
  std::unique_ptr<Switch> sw;
  Switch::Options o;
  o.worker_lcores = {1};
  o.mbufs = 2047;
  Check(Switch::Create(o, &sw), "switch");
  StateStore store(sw.get(), dir / "config", dir / "state", "");
  for (int i = 0; i < 20; i++) {
    PortExport e;
    e.spec = Spec(dir, "vm-" + std::to_string(i));
    e.slots = {FilterSpec{1, "swsec"}, FilterSpec{2, "sfw"}};
    e.rules = Rules(100);
    Check(sw->ImportPort(e), "port");
  }
  Check(store.SaveConfig(), "save");

  std::vector<double> plain, durable;
  for (int r = 0; r < kReps; r++) {
    auto t0 = Clock::now();
    Check(sw->AddPort(Spec(dir, "extra")), "add");
    Check(sw->RemovePort("extra"), "del");
    plain.push_back(Ms(t0));
    t0 = Clock::now();
    Check(sw->AddPort(Spec(dir, "extra")), "add");
    Check(store.SaveConfig(), "save");
    Check(sw->RemovePort("extra"), "del");
    Check(store.SaveConfig(), "save");
    durable.push_back(Ms(t0));
  }
  std::printf("port add + port del      %8.2f ms, saved before each answer %8.2f ms  (%.1fx)\n", Median(plain),
              Median(durable), Median(durable) / Median(plain));

  const std::string big = Rules(10000);
  plain.clear();
  durable.clear();
  for (int r = 0; r < 5; r++) {
    auto t0 = Clock::now();
    Check(sw->LoadRules("vm-0", big), "rules");
    plain.push_back(Ms(t0));
    t0 = Clock::now();
    Check(sw->LoadRules("vm-0", big), "rules");
    Check(store.SaveConfig(), "save");
    durable.push_back(Ms(t0));
  }
  std::printf("setrules, 10,000 rules   %8.2f ms, saved before the answer  %8.2f ms  (%.2fx)\n", Median(plain),
              Median(durable), Median(durable) / Median(plain));
  sw.reset();

  const std::string conn_dir = "/dev/shm/palisade-durability-" + std::to_string(getpid());
  for (uint32_t n : {100000u, 1000000u}) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    PortExport e;
    e.spec = Spec(dir, "vm-db");
    e.slots = {FilterSpec{2, "sfw"}};
    e.rules = Rules(100);
    e.options.conn_limit = n + 1000;
    e.conns = fw::UdpConns(n, 50);
    auto flows = [&] {
      Switch::FirewallStatus f;
      Check(sw->GetFirewall("vm-db", &f), "restored flows");
      return f.flows;
    };
    // The floor: the port and its connections imported from memory, into private memory; the
    // entries are judged in parallel (TBB), so once more on one thread for the speed-up.
    double serial_import;
    size_t taken = 0;
    {
      tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
      Check(Switch::Create(o, &sw), "switch");
      auto t0 = Clock::now();
      Check(sw->ImportPort(e, &taken), "import");
      serial_import = Ms(t0);
      sw.reset();
    }
    Check(Switch::Create(o, &sw), "switch");
    auto t0 = Clock::now();
    Check(sw->ImportPort(e, &taken), "import");
    const double private_import = Ms(t0);
    sw.reset();
    // The same into a segment; then the process "crashes" (nothing saved but the configuration).
    Switch::Options kept = o;
    kept.conn_dir = conn_dir;
    std::filesystem::create_directories(conn_dir);
    Check(Switch::Create(kept, &sw), "switch");
    t0 = Clock::now();
    Check(sw->ImportPort(e, &taken), "import");
    const double from_memory = Ms(t0);
    {
      StateStore before(sw.get(), dir / "config", dir / "state", conn_dir);
      Check(before.SaveConfig(), "save");
    }
    sw.reset();
    // The restart after the crash: configuration, then the segments.
    Check(Switch::Create(kept, &sw), "switch");
    StateStore after_crash(sw.get(), dir / "config", dir / "state", conn_dir);
    t0 = Clock::now();
    after_crash.Restore();
    after_crash.RestoreSegments();
    const double crash_restore = Ms(t0);
    const uint32_t crash_count = flows();
    // A clean stop: the state file gets the connections (and the segments go).
    t0 = Clock::now();
    after_crash.SaveAll();
    const double save = Ms(t0);
    const auto bytes = std::filesystem::file_size(dir / "state");
    sw.reset();
    Check(Switch::Create(kept, &sw), "switch");
    StateStore after_stop(sw.get(), dir / "config", dir / "state", conn_dir);
    t0 = Clock::now();
    after_stop.Restore();
    after_stop.RestoreSegments();
    const double stop_restore = Ms(t0);
    const uint32_t stop_count = flows();
    std::printf("%8u connections: restart after a crash (segments) %7.1f ms (%u back), after a clean stop "
                "(file, %.1f MB) %7.1f ms (%u back), the stop's save %7.1f ms; importing from memory %7.1f ms "
                "(crash restart %.2fx); into a segment against private memory %.2fx; on one CPU %.0f ms, "
                "speed-up on %u %.2fx\n",
                n, crash_restore, crash_count, static_cast<double>(bytes) / 1e6, stop_restore, stop_count, save,
                from_memory, crash_restore / from_memory, from_memory / private_import,
                serial_import, std::thread::hardware_concurrency(), serial_import / private_import);
    sw.reset();
  }
  std::filesystem::remove_all(conn_dir);
}

}  // namespace
}  // namespace palisade

int main() {
  std::string prefix = "--file-prefix=palisade-durability-" + std::to_string(getpid());
  std::vector<std::string> args = {"durability_bench", "--no-huge", "-m", "256", "--no-pci", prefix,
                                   "--log-level=lib.*:error", "--no-telemetry"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) return 1;
  // The EAL pins this thread to one CPU; control work (TBB) may use them all here, as no worker
  // runs (palisaded gives it the CPUs its workers do not use).
  cpu_set_t all;
  CPU_ZERO(&all);
  for (unsigned c = 0; c < std::thread::hardware_concurrency(); c++) CPU_SET(c, &all);
  pthread_setaffinity_np(pthread_self(), sizeof all, &all);
  const std::filesystem::path dir = "/var/tmp/palisade-durability-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  palisade::Run(dir);
  std::filesystem::remove_all(dir);
  std::string runtime = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::filesystem::remove_all(runtime);
  return 0;
}
