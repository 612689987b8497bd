#pragma once

#include <atomic>
#include <memory>

#include "backend/backend.h"
#include "backend/memory/memory_store.h"
#include "backend/serial_executor.h"

namespace coordd::backend::memory {

// One coordinator session on a MemoryStore: the embedded coordinator of a
// single-host coordd, and the deterministic fake of the state-machine tests.
//
// NOTE: simplifying assumptions.
// * The link never fails by itself; suspend(), reconnect() and expire() inject
//   the transitions ZooKeeper would produce, in order, on the backend thread.
// * There is no session timeout: info().session_timeout is infinite, and an
//   expiry happens only when injected.
class MemoryBackend : public Backend, private MemoryStore::SessionSink {
 public:
  explicit MemoryBackend(std::shared_ptr<MemoryStore> store);
  ~MemoryBackend() override;

  // Fault injection. Each queues the transition and returns.
  // suspend: SUSPENDED; operations fail Unavailable; notifications stop.
  void suspend();
  // reconnect: RECONNECTED within the same session; nodes kept.
  void reconnect();
  // expire: every node of the session goes (others are told), EXPIRED, then a
  // new session and CONNECTED.
  void expire();

  void start(Listener* listener) override;
  void stop() override;
  BackendInfo info() const override;
  // In-process: only this process (suspend/expire above) ends the session.
  std::chrono::steady_clock::time_point leaseDeadline() const override;
  std::chrono::steady_clock::time_point holdDeadline() const override;

  void tryLock(const std::string& name, const OwnerRecord& owner, Callback<TryLockResult> done) override;
  void lock(const std::string& name, const OwnerRecord& owner, int64_t waiter_id, Callback<int64_t> done) override;
  void cancelLock(const std::string& name, int64_t waiter_id, Done done) override;
  void unlock(const std::string& name, int64_t token, Done done) override;
  void verifyLock(const std::string& name, int64_t token, Callback<bool> done) override;

  void campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                Callback<CampaignResult> done) override;
  void resign(const std::string& election, int64_t term, Done done) override;
  void verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) override;
  void leader(const std::string& election, Callback<std::optional<Candidate>> done) override;
  void watchElection(const std::string& election) override;
  void unwatchElection(const std::string& election) override;

  void listLocks(Callback<std::vector<LockView>> done) override;
  void lockInfo(const std::string& name, Callback<LockView> done) override;
  void forceUnlock(const std::string& name, Callback<LockHolder> done) override;
  void listElections(Callback<std::vector<ElectionView>> done) override;
  void electionInfo(const std::string& election, Callback<ElectionView> done) override;
  void stepDown(const std::string& election, Callback<Candidate> done) override;
  void registerMember(const Member& self) override;
  void listMembers(Callback<std::vector<Member>> done) override;

 private:
  void post(std::function<void()> task) override { executor_.post(std::move(task)); }
  Listener* listener() override { return listener_; }
  // Runs op(session) on the backend thread and hands its result to done.
  template <typename Op, typename DoneFn>
  void run(Op op, DoneFn done);

  std::shared_ptr<MemoryStore> store_;
  Listener* listener_ = nullptr;
  std::atomic<int64_t> session_{0};
  // Only touched on the backend thread.
  std::optional<Member> self_;
  SerialExecutor executor_;
};

}  // namespace coordd::backend::memory
