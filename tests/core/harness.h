#pragma once

#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/keeper/faulty_keeper.h"
#include "backend/memory/embedded.h"
#include "core/core.h"

namespace coordd::testing {

using namespace std::chrono_literals;

// Records what the core pushes down a session's KeepAlive stream.
class RecordingSink : public core::EventSink {
 public:
  void send(const core::Event& event) override;
  void close() override;

  // Waits up to `timeout` for an event matching `match`; consumes events up
  // to and including it. Returns it, or nullopt on timeout.
  template <typename Match>
  std::optional<core::Event> waitFor(Match match, std::chrono::milliseconds timeout = 2000ms) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<core::Event> found;
    cv_.wait_for(lock, timeout, [&] {
      while (next_ < events_.size()) {
        const core::Event& event = events_[next_++];
        if (match(event)) {
          found = event;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // How many events received so far match `match`, consumed or not.
  template <typename Match>
  size_t count(Match match) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<size_t>(std::count_if(events_.begin(), events_.end(), match));
  }
  std::optional<core::Event> waitLock(const std::string& name, core::LockState state);
  // The heartbeat that says the link is suspended, for every hold at once.
  std::optional<core::Event> waitLinkSuspended();
  std::optional<core::Event> waitElection(const std::string& election, core::CandidateStatus status);
  bool closed();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<core::Event> events_;
  size_t next_ = 0;
  bool closed_ = false;
};

// The shared ensemble of the daemons of a test.
std::shared_ptr<backend::keeper::MemoryKeeper> newKeeper();
// The embedded coordinator's recipes on `keeper`, each session's answers
// lost where `policy` says.
std::unique_ptr<backend::Backend> faultyBackend(const std::shared_ptr<backend::keeper::MemoryKeeper>& keeper,
                                                backend::keeper::FaultyKeeper::Policy policy);

// One daemon: a core on its own coordinator session of a shared keeper.
struct Daemon {
  explicit Daemon(std::shared_ptr<backend::keeper::MemoryKeeper> keeper, core::Limits limits = {});
  // On `backend`, the recipes on `keeper` or a test's variant of them.
  Daemon(std::shared_ptr<backend::keeper::MemoryKeeper> keeper, std::unique_ptr<backend::Backend> backend,
         core::Limits limits = {});
  ~Daemon();

  // Faults of this daemon's coordinator sessions, as the keeper makes them:
  // contact lost (SUSPENDED) and regained (RECONNECTED), by both sessions;
  // the first session expired while away, then contact regained (EXPIRED,
  // then a new session).
  void suspend();
  void reconnect();
  void expire();
  int64_t keeperSession() const;
  int64_t watchSession() const;  // 0 while it has none
  // Watches set by both sessions.
  size_t watchCount() const;

  // A session with a recording KeepAlive stream.
  struct Client {
    std::string id;
    std::shared_ptr<RecordingSink> events;
  };
  // `processes`: what the core may watch to tell the client is gone.
  Client open(const std::string& owner = "test", std::chrono::milliseconds ttl = 10s,
              std::shared_ptr<const core::ClientProcesses> processes = nullptr);

  absl::StatusOr<core::TryAcquireResult> tryAcquire(const Client& c, const std::string& name);
  absl::StatusOr<int64_t> acquire(const Client& c, const std::string& name, std::chrono::milliseconds timeout);
  // Starts a blocking acquire; the future gets its reply.
  std::future<absl::StatusOr<int64_t>> acquireAsync(const Client& c, const std::string& name,
                                                    std::chrono::milliseconds timeout, int64_t* waiter_id = nullptr);
  absl::Status release(const Client& c, const std::string& name);
  absl::StatusOr<core::ElectionStatus> campaign(const Client& c, const std::string& election, bool rejoin = true,
                                                const std::string& value = "");
  absl::Status resign(const Client& c, const std::string& election);
  absl::Status close(const Client& c);
  // Blocks until the core has seen the given link state (via Check-free
  // polling of daemonStatus).
  void waitLink(backend::LinkState state);

  std::shared_ptr<backend::keeper::MemoryKeeper> keeper;
  std::unique_ptr<backend::Backend> owned_backend;
  backend::Backend& backend;
  core::Core core;
};

// The processes of a test client: alive until exit().
class TestProcesses : public core::ClientProcesses {
 public:
  bool gone() const override { return gone_.load(); }
  void exit() { gone_.store(true); }

 private:
  std::atomic<bool> gone_{false};
};

// Waits for a backend call's callback.
template <typename T>
absl::StatusOr<T> await(const std::function<void(backend::Callback<T>)>& call) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  auto future = promise->get_future();
  call([promise](absl::StatusOr<T> result) { promise->set_value(std::move(result)); });
  return future.get();
}

// Waits, up to 2 s, until `condition` holds.
bool eventually(const std::function<bool()>& condition);

}  // namespace coordd::testing
