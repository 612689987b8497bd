#include "load_worker.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordd/client.h"
#include "harness.h"

namespace coordd::e2e {
namespace {

constexpr char kFlag[] = "--load-worker";
constexpr int kThreads = 4;

}  // namespace

std::string loadLock(int session, int k) { return absl::StrCat("load-lock-", session, "-", k); }
std::string loadElection(int session) { return absl::StrCat("load-election-", session); }

std::vector<std::string> loadWorkerCommand(const std::string& address, int first_session, int sessions, int locks,
                                           int elections, const std::string& ready) {
  return {selfPath(),
          kFlag,
          address,
          absl::StrCat(first_session),
          absl::StrCat(sessions),
          absl::StrCat(locks),
          absl::StrCat(elections),
          ready};
}

std::optional<int> runLoadWorkerIfAsked(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], kFlag) != 0) return std::nullopt;
  int first = 0, sessions = 0, locks = 0, elections = 0;
  if (argc != 8 || !absl::SimpleAtoi(argv[3], &first) || !absl::SimpleAtoi(argv[4], &sessions) ||
      !absl::SimpleAtoi(argv[5], &locks) || !absl::SimpleAtoi(argv[6], &elections)) {
    return 2;
  }
  auto client = coordd::Client::connect(argv[2]);
  if (!client.ok()) return 2;
  // Everything held stays referenced until the process is killed.
  std::mutex mu;
  std::vector<std::unique_ptr<coordd::Session>> held_sessions;
  std::vector<coordd::LockGuard> held_locks;
  std::vector<std::unique_ptr<coordd::Election>> held_elections;
  std::string failure;  // the first one, for the test's message
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < sessions; i += kThreads) {
        const int number = first + i;
        coordd::SessionOptions options;
        options.owner = absl::StrCat("load-", number);
        options.ttl = absl::Seconds(60);
        auto session = (*client)->openSession(options);
        std::string why = session.ok() ? "" : absl::StrCat("open: ", session.status().ToString());
        std::vector<coordd::LockGuard> mine;
        for (int k = 0; why.empty() && k < locks; ++k) {
          auto got = (*session)->tryLock(loadLock(number, k));
          if (!got.ok()) {
            why = absl::StrCat("tryLock: ", got.status().ToString());
          } else if (!got->acquired()) {
            why = absl::StrCat("tryLock: ", loadLock(number, k), " held elsewhere");
          } else {
            mine.push_back(std::move(*got->guard));
          }
        }
        std::unique_ptr<coordd::Election> election;
        if (why.empty() && number < elections) {
          auto campaigned = (*session)->campaign(loadElection(number), absl::StrCat(number));
          if (campaigned.ok()) {
            election = std::move(*campaigned);
          } else {
            why = absl::StrCat("campaign: ", campaigned.status().ToString());
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (!why.empty()) {
          if (failure.empty()) failure = absl::StrCat("session ", number, ": ", why);
          return;
        }
        held_sessions.push_back(std::move(*session));
        for (auto& guard : mine) held_locks.push_back(std::move(guard));
        if (election) held_elections.push_back(std::move(election));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (!failure.empty()) {
    std::fprintf(stderr, "load worker: %s\n", failure.c_str());
    return 3;
  }
  std::ofstream(argv[7], std::ios::app) << getpid() << std::endl;
  for (;;) pause();
}

}  // namespace coordd::e2e
