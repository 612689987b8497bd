#include "coordd_workloads.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordd/admin.h"
#include "coordd/client.h"
#include "coordd_driver.h"
#include "coordd/v1/coordd.grpc.pb.h"

namespace coordd::bench {
namespace {

using namespace std::chrono_literals;

template <typename T>
T valueOr(absl::StatusOr<T> result, const std::string& what) {
  if (!result.ok()) throw std::runtime_error(absl::StrCat(what, ": ", result.status().ToString()));
  return *std::move(result);
}

std::unique_ptr<Session> openSession(Client& client, const std::string& owner) {
  SessionOptions options;
  options.owner = owner;
  return valueOr(client.openSession(std::move(options)), "open session " + owner);
}

// Times `calls` calls of `call` (true: answered as expected), after a tenth
// as many untimed ones to warm up the connection and the daemon.
template <typename Call>
Percentiles timeCalls(int calls, int64_t& errors, Call&& call) {
  for (int i = 0; i < calls / 10; ++i) call();
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(calls));
  for (int i = 0; i < calls; ++i) {
    const Clock::time_point begin = Clock::now();
    const bool ok = call();
    samples.push_back(micros(begin, Clock::now()));
    if (!ok) ++errors;
  }
  return percentiles(std::move(samples));
}

// Like the library's calls: every call carries a deadline.
void setDeadline(grpc::ClientContext& context) { context.set_deadline(std::chrono::system_clock::now() + 5s); }

}  // namespace

LocalCallLatency measureLocalCalls(const std::string& address, int calls) {
  auto client = valueOr(Client::connect(address), "connect " + address);
  auto session = openSession(*client, "bench-check");
  const std::string lock_name = "bench-check-lock";
  const std::string election_name = "bench-status-election";
  TryLockResult held = valueOr(session->tryLock(lock_name), "tryLock " + lock_name);
  if (!held.acquired()) throw std::runtime_error(lock_name + " is held by someone else");
  auto candidacy = valueOr(session->campaign(election_name, "bench"), "campaign " + election_name);
  if (!candidacy->isPrimary()) throw std::runtime_error("not primary of " + election_name);

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto locks = v1::Locks::NewStub(channel);
  auto elections = v1::Elections::NewStub(channel);
  v1::CheckRequest check;
  check.set_session_id(session->id());
  check.set_name(lock_name);
  v1::StatusRequest status;
  status.set_session_id(session->id());
  status.set_election(election_name);

  LocalCallLatency result;
  result.check_us = timeCalls(calls, result.errors, [&] {
    grpc::ClientContext context;
    setDeadline(context);
    v1::CheckResponse response;
    return locks->Check(&context, check, &response).ok() && response.state() == v1::LOCK_STATE_HELD;
  });
  result.status_us = timeCalls(calls, result.errors, [&] {
    grpc::ClientContext context;
    setDeadline(context);
    v1::StatusResponse response;
    return elections->Status(&context, status, &response).ok() && response.status() == v1::CANDIDATE_STATUS_PRIMARY;
  });
  HealthCall health(channel);
  result.health_us = timeCalls(calls, result.errors, [&] { return health.call(); });
  result.library_us = timeCalls(calls, result.errors, [&] { return candidacy->isPrimary() && held.guard->held(); });
  return result;
}

double MemoryFigures::bytesPerLock() const {
  return locks > 0 ? static_cast<double>(loaded_kib - idle_kib) * 1024.0 / locks : 0;
}

MemoryFigures measureMemory(const std::vector<std::string>& daemon_args, int sessions, int locks_per_session) {
  e2e::Daemon daemon(daemon_args);
  // Ready means serving, not done allocating: let start-up work (the
  // coordinator session, the cleaner's first pass) finish first.
  std::this_thread::sleep_for(1s);
  MemoryFigures figures;
  figures.sessions = sessions;
  figures.locks = sessions * locks_per_session;
  figures.idle_kib = e2e::rssKiB(daemon.process().pid());

  auto client = valueOr(Client::connect(daemon.address()), "connect " + daemon.address());
  std::vector<std::unique_ptr<Session>> open(static_cast<size_t>(sessions));
  std::vector<std::vector<LockGuard>> held(static_cast<size_t>(sessions));
  std::mutex mu;
  std::string first_error;
  // One thread per session, as if each were its own process.
  auto take = [&](size_t s) {
    try {
      open[s] = openSession(*client, absl::StrCat("bench-memory-", s));
      for (int k = 0; k < locks_per_session; ++k) {
        const std::string name = absl::StrCat("bench-memory-", s, "-", k);
        TryLockResult result = valueOr(open[s]->tryLock(name), "tryLock " + name);
        if (!result.acquired()) throw std::runtime_error(name + " is held by someone else");
        held[s].push_back(std::move(*result.guard));
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_error.empty()) first_error = e.what();
    }
  };
  // Ends the sessions (the daemon releases their locks at once) before the
  // guards go, which then have nothing left to release.
  auto close = [&](size_t s) {
    if (open[s]) open[s]->close().IgnoreError();
  };
  auto onEachSession = [&](auto&& work) {
    std::vector<std::thread> threads;
    for (size_t s = 0; s < open.size(); ++s) threads.emplace_back(work, s);
    for (auto& thread : threads) thread.join();
  };

  onEachSession(take);
  if (first_error.empty()) {
    const v1::DaemonStatusResponse status = valueOr(client->admin().status(), "admin status");
    if (status.locks_held() != figures.locks) {
      first_error = absl::StrCat("daemon holds ", status.locks_held(), " locks, not ", figures.locks);
    }
  }
  figures.loaded_kib = e2e::rssKiB(daemon.process().pid());
  onEachSession(close);
  if (!first_error.empty()) throw std::runtime_error("memory load: " + first_error);
  return figures;
}

std::vector<double> measureFailover(e2e::Daemon& primary_daemon, e2e::Daemon& standby_daemon, int trials) {
  auto client = valueOr(Client::connect(standby_daemon.address()), "connect " + standby_daemon.address());
  auto session = openSession(*client, "bench-standby");
  std::vector<double> samples;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string election = absl::StrCat("bench-failover-", trial);
    auto primary = primary_daemon.startCoordctl({"elect", election, "--", "/bin/sleep", "1000"});
    const bool elected = e2e::eventually(
        [&] {
          auto leader = client->leader(election);
          return !primary->running() || (leader.ok() && leader->has_value());
        },
        10s);
    if (!elected || !primary->running())
      throw std::runtime_error("coordctl elect did not become primary:\n" + primary->err());

    // Shared with the callback, which the session may still hold on to
    // after the candidacy is gone.
    struct Promotion {
      std::mutex mu;
      std::condition_variable promoted;
      std::optional<Clock::time_point> at;
    };
    auto promotion = std::make_shared<Promotion>();
    CampaignOptions options;
    options.on_change = [promotion](const ElectionState& state) {
      if (state.status != ElectionStatus::kPrimary) return;
      std::lock_guard<std::mutex> lock(promotion->mu);
      if (!promotion->at) promotion->at = Clock::now();
      promotion->promoted.notify_all();
    };
    auto candidacy = valueOr(session->campaign(election, "standby", std::move(options)), "campaign " + election);
    if (candidacy->status() != ElectionStatus::kSecondary) {
      throw std::runtime_error(absl::StrCat("standby is ", toString(candidacy->status()), ", not secondary"));
    }

    const Clock::time_point killed_at = Clock::now();
    primary->signal(SIGKILL);
    std::unique_lock<std::mutex> lock(promotion->mu);
    if (!promotion->promoted.wait_for(lock, 10s, [&] { return promotion->at.has_value(); })) {
      throw std::runtime_error("standby not primary 10 s after the primary was killed, in " + election);
    }
    samples.push_back(micros(killed_at, *promotion->at));
    lock.unlock();
    candidacy->resign().IgnoreError();
    primary->wait(5s);
  }
  return samples;
}

}  // namespace coordd::bench
