// coordd_faults: the fault-injection suite. Starts a 3-node ZooKeeper
// ensemble, three daemons and contending clients, injects faults from a
// seeded RNG and checks the invariants; then proves the checker can fail
// with clients that ignore SUSPENDED and tokens.
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "checker.h"
#include "client.h"
#include "scenario.h"

namespace {

constexpr char kUsage[] = R"(usage: coordd_faults [--profile short|soak] [--seed N] [--report FILE] [--no-unsafe]

Runs coordd under injected faults and checks its safety invariants.
  --profile short   one round of every fault kind (about 2 minutes; CI)
  --profile soak    rounds of faults for 10 minutes more
  --seed N          the RNG seed; a run is replayed by its seed (default: random)
  --report FILE     also write the report there (Markdown)
  --no-unsafe       skip the run that proves the checker catches an unsafe client
Exit status: 0 when no invariant was violated and the unsafe client was caught.
)";

}  // namespace

int run(int argc, char** argv);

int main(int argc, char** argv) {
  if (auto code = coordd::faults::runClientIfAsked(argc, argv)) return *code;
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "the suite could not run: " << e.what() << std::endl;
    return 1;
  }
}

int run(int argc, char** argv) {
  coordd::faults::ScenarioConfig config;
  config.seed = std::random_device()();
  std::string report_file;
  bool unsafe_run = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--profile" && has_value) {
      const std::string profile = argv[++i];
      if (profile != "short" && profile != "soak") {
        std::cerr << "--profile: expected short or soak, got " << profile << "\n";
        return 2;
      }
      config.extra_time = profile == "soak" ? std::chrono::seconds(600) : std::chrono::seconds(0);
    } else if (arg == "--seed" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &config.seed)) {
        std::cerr << "--seed: expected a number, got " << argv[i] << "\n";
        return 2;
      }
    } else if (arg == "--report" && has_value) {
      report_file = argv[++i];
    } else if (arg == "--no-unsafe") {
      unsafe_run = false;
    } else {
      std::cerr << (arg == "--help" ? "" : "unknown argument: " + arg + "\n") << kUsage;
      return arg == "--help" ? 0 : 2;
    }
  }

  std::cout << "== coordd fault-injection suite, seed " << config.seed << " ==" << std::endl;
  auto run = coordd::faults::runScenario(config, std::cout);
  auto verdict = coordd::faults::check(run);
  std::string text = coordd::faults::report(run, verdict, config.seed);
  std::cout << "\n" << text << std::flush;
  bool ok = verdict.violations() == 0;

  if (unsafe_run) {
    std::cout << "\n== the same with two unsafe clients (ignore SUSPENDED and tokens): the checker must catch them =="
              << std::endl;
    coordd::faults::ScenarioConfig unsafe = config;
    unsafe.unsafe = true;
    auto unsafe_record = coordd::faults::runScenario(unsafe, std::cout);
    auto unsafe_verdict = coordd::faults::check(unsafe_record);
    const std::string unsafe_text = coordd::faults::report(unsafe_record, unsafe_verdict, config.seed);
    std::cout << "\n" << unsafe_text;
    const size_t caught =
        unsafe_verdict.invariants[0].violations.size() + unsafe_verdict.invariants[2].violations.size();
    std::cout << "\nunsafe clients caught by I1 or I3: " << (caught > 0 ? "yes" : "NO") << " (" << caught
              << " violations)" << std::endl;
    ok = ok && caught > 0;
    text += "\n## With unsafe clients\n\n" + unsafe_text;
  }
  if (!report_file.empty()) std::ofstream(report_file) << text;
  std::cout << (ok ? "\nPASS" : "\nFAIL") << std::endl;
  return ok ? 0 : 1;
}
