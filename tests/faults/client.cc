// The contending clients of the fault suite: each takes its lock or stands in
// its election again and again through the client library, and acts on the
// fenced resource while it believes it holds or is primary.
#include "client.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "coordd/client.h"
#include "harness.h"
#include "resource.h"

namespace coordd::faults {
namespace {

constexpr char kClientFlag[] = "--faults-client";
constexpr auto kPoll = std::chrono::milliseconds(3);
std::atomic<bool> stop_requested{false};

class EventLog {
 public:
  explicit EventLog(const std::string& path) : out_(path, std::ios::app) {}
  void add(const std::string& kind, const std::string& resource, int64_t token, absl::string_view detail = "-") {
    std::lock_guard<std::mutex> lock(mu_);
    // Flushed per line: a kill -9 loses nothing written before it.
    out_ << e2e::monotonicMicros() << ' ' << kind << ' ' << resource << ' ' << token << ' '
         << (detail.empty() ? "-" : detail) << std::endl;
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

std::string noSpaces(std::string text) {
  for (char& c : text) {
    if (c == ' ' || c == '\n') c = '_';
  }
  return text;
}

class ClientRun {
 public:
  explicit ClientRun(const ClientConfig& config)
      : config_(config),
        resource_name_(resourceOf(config)),
        log_(config.log),
        writer_(config.resource, config.slot),
        rng_(config.seed) {}

  int run() {
    log_.add("start", "-", getpid());
    auto client = coordd::Client::connect(config_.address);
    if (!client.ok()) {
      log_.add("error", "-", 0, noSpaces(client.status().ToString()));
      return 2;
    }
    while (!stop_requested) {
      coordd::SessionOptions options;
      options.owner = absl::StrCat("faults-client-", config_.slot);
      options.ttl = absl::Milliseconds(config_.ttl_ms);
      auto session = (*client)->openSession(options);
      if (!session.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the daemon restarts, say
        continue;
      }
      log_.add("session", "-", 0, (*session)->id().substr(0, 16));
      if (config_.role == ClientConfig::Role::kLock) {
        lockLoop(**session);
      } else {
        electionLoop(**session);
      }
      log_.add("session-end", "-", 0, noSpaces((*session)->ended() ? (*session)->endReason() : "stopping"));
    }
    return 0;
  }

 private:
  int64_t randomMs(int64_t low, int64_t high) { return std::uniform_int_distribution<int64_t>(low, high)(rng_); }

  void lockLoop(coordd::Session& session) {
    while (!stop_requested && !session.ended()) {
      auto token = std::make_shared<std::atomic<int64_t>>(0);
      coordd::LockOptions options;
      options.on_change = [this, token](coordd::LockState state, absl::string_view) {
        log_.add("event", resource_name_, token->load(), coordd::toString(state));
      };
      auto guard = session.lock(config_.name, absl::Seconds(3), options);
      if (!guard.ok()) {
        if (!absl::IsDeadlineExceeded(guard.status())) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      token->store(guard->token());
      log_.add("begin", resource_name_, guard->token());
      // The unsafe client never lets go by itself: whatever fault hits it,
      // it goes on acting, and the checker must see it.
      const auto until = config_.unsafe
                             ? std::chrono::steady_clock::time_point::max()
                             : std::chrono::steady_clock::now() + std::chrono::milliseconds(randomMs(30, 300));
      bool believed = true;
      while (std::chrono::steady_clock::now() < until && !stop_requested) {
        const bool held = guard->held();
        if (!held && !config_.unsafe) {
          believed = false;
          log_.add("end", resource_name_, guard->token(), noSpaces(absl::StrCat(coordd::toString(guard->state()))));
          break;
        }
        writer_.write(resource_name_, guard->token(), held, !config_.unsafe);
        std::this_thread::sleep_for(kPoll);
      }
      if (believed) log_.add("end", resource_name_, guard->token(), "released");
      guard->release().IgnoreError();
      std::this_thread::sleep_for(std::chrono::milliseconds(randomMs(0, 30)));
    }
  }

  void electionLoop(coordd::Session& session) {
    while (!stop_requested && !session.ended()) {
      coordd::CampaignOptions options;
      options.on_change = [this](const coordd::ElectionState& state) {
        log_.add("event", resource_name_, state.term, coordd::toString(state.status));
      };
      auto election = session.campaign(config_.name, absl::StrCat(config_.slot), options);
      if (!election.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      serve(session, **election);
      (*election)->resign().IgnoreError();
      std::this_thread::sleep_for(std::chrono::milliseconds(randomMs(0, 100)));
    }
  }

  // Acts while primary; returns to step down now and then, so that
  // primaryship keeps moving.
  void serve(coordd::Session& session, coordd::Election& election) {
    int64_t term = 0;  // the term it believes it is primary in; 0: none
    std::chrono::steady_clock::time_point step_down_at;
    // The unsafe client believes in its primaryship until it steps down,
    // whatever the library says, even after the session ended.
    while (!stop_requested && (!session.ended() || (config_.unsafe && term != 0))) {
      // One consistent reading: the term it is primary in, not the next one.
      const coordd::ElectionState now = election.state();
      const bool primary = now.status == coordd::ElectionStatus::kPrimary;
      const int64_t current = now.term;
      if (term != 0 && !config_.unsafe && (!primary || current != term)) {
        log_.add("end", resource_name_, term, coordd::toString(now.status));
        term = 0;
      }
      if (term == 0 && primary) {
        term = current;
        log_.add("begin", resource_name_, term);
        step_down_at = config_.unsafe
                           ? std::chrono::steady_clock::time_point::max()
                           : std::chrono::steady_clock::now() + std::chrono::milliseconds(randomMs(300, 2500));
      }
      if (term != 0) {
        writer_.write(resource_name_, term, primary && current == term, !config_.unsafe);
        if (std::chrono::steady_clock::now() >= step_down_at) {
          log_.add("end", resource_name_, term, "resigned");
          return;
        }
      }
      std::this_thread::sleep_for(kPoll);
    }
    if (term != 0) log_.add("end", resource_name_, term, session.ended() ? "session-ended" : "stopping");
  }

  const ClientConfig config_;
  const std::string resource_name_;
  EventLog log_;
  ResourceWriter writer_;
  std::mt19937_64 rng_;
};

}  // namespace

std::string resourceOf(const ClientConfig& config) {
  return absl::StrCat(config.role == ClientConfig::Role::kLock ? "lock/" : "election/", config.name);
}

std::vector<std::string> clientCommand(const ClientConfig& config) {
  return {e2e::selfPath(),
          kClientFlag,
          absl::StrCat(config.slot),
          config.role == ClientConfig::Role::kLock ? "lock" : "election",
          config.name,
          config.address,
          config.log,
          config.resource,
          absl::StrCat(config.ttl_ms),
          config.unsafe ? "unsafe" : "safe",
          absl::StrCat(config.seed)};
}

std::optional<int> runClientIfAsked(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], kClientFlag) != 0) return std::nullopt;
  ClientConfig config;
  if (argc != 11 || !absl::SimpleAtoi(argv[2], &config.slot) || !absl::SimpleAtoi(argv[8], &config.ttl_ms) ||
      !absl::SimpleAtoi(argv[10], &config.seed)) {
    return 2;
  }
  config.role = std::strcmp(argv[3], "lock") == 0 ? ClientConfig::Role::kLock : ClientConfig::Role::kElection;
  config.name = argv[4];
  config.address = argv[5];
  config.log = argv[6];
  config.resource = argv[7];
  config.unsafe = std::strcmp(argv[9], "unsafe") == 0;
  std::signal(SIGTERM, [](int) { stop_requested = true; });
  return ClientRun(config).run();
}

std::vector<LogLine> readClientLog(const std::string& path) {
  std::vector<LogLine> lines;
  for (const auto& text : e2e::readLines(path)) {
    std::vector<std::string> f = absl::StrSplit(text, absl::MaxSplits(' ', 4));
    LogLine line;
    if (f.size() != 5 || !absl::SimpleAtoi(f[0], &line.at_us) || !absl::SimpleAtoi(f[3], &line.token)) continue;
    line.kind = f[1];
    line.resource = f[2];
    line.detail = f[4];
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace coordd::faults
