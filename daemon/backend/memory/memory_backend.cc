#include "backend/memory/memory_backend.h"

#include "absl/strings/str_cat.h"

namespace coordd::backend::memory {

MemoryBackend::MemoryBackend(std::shared_ptr<MemoryStore> store) : store_(std::move(store)) {}

MemoryBackend::~MemoryBackend() { stop(); }

template <typename Op, typename DoneFn>
void MemoryBackend::run(Op op, DoneFn done) {
  // Bound to the session of the moment of the call, as a ZooKeeper handle
  // is: a call issued before an expiry fails with it instead of landing in
  // the next session.
  executor_.post(
      [op = std::move(op), done = std::move(done), session = session_.load()]() mutable { done(op(session)); });
}

void MemoryBackend::start(Listener* listener) {
  listener_ = listener;
  session_ = store_->openSession(this);
  executor_.post([this] { listener_->onLinkState(LinkState::kConnected); });
}

void MemoryBackend::stop() {
  int64_t session = session_.exchange(0);
  if (session != 0) store_->closeSession(session);
  executor_.stop();
}

BackendInfo MemoryBackend::info() const {
  return BackendInfo{"memory", absl::StrCat(session_.load()), absl::InfiniteDuration(), "in-process"};
}

std::chrono::steady_clock::time_point MemoryBackend::leaseDeadline() const {
  return std::chrono::steady_clock::time_point::max();
}

std::chrono::steady_clock::time_point MemoryBackend::holdDeadline() const {
  return std::chrono::steady_clock::time_point::max();
}

void MemoryBackend::suspend() {
  executor_.post([this] {
    store_->setSuspended(session_, true);
    listener_->onLinkState(LinkState::kSuspended);
  });
}

void MemoryBackend::reconnect() {
  executor_.post([this] {
    // Told first, so that waiters served on reconnect find the link up.
    listener_->onLinkState(LinkState::kReconnected);
    store_->setSuspended(session_, false);
  });
}

void MemoryBackend::expire() {
  executor_.post([this] {
    if (session_ == 0) return;  // stopped meanwhile
    store_->closeSession(session_);
    listener_->onLinkState(LinkState::kExpired);
    session_ = store_->openSession(this);
    if (self_) store_->registerMember(session_, *self_);
    listener_->onLinkState(LinkState::kConnected);
  });
}

void MemoryBackend::tryLock(const std::string& name, const OwnerRecord& owner, Callback<TryLockResult> done) {
  run([this, name, owner](int64_t s) { return store_->tryLock(s, name, owner); }, std::move(done));
}

void MemoryBackend::lock(const std::string& name, const OwnerRecord& owner, int64_t waiter_id, Callback<int64_t> done) {
  executor_.post([this, name, owner, waiter_id, done = std::move(done), session = session_.load()]() mutable {
    // On success the store keeps `done` and posts it when the lock is granted.
    auto shared = std::make_shared<Callback<int64_t>>(std::move(done));
    absl::Status status =
        store_->lock(session, name, owner, waiter_id, [shared](absl::StatusOr<int64_t> r) { (*shared)(r); });
    if (!status.ok()) (*shared)(status);
  });
}

void MemoryBackend::cancelLock(const std::string& name, int64_t waiter_id, Done done) {
  run([this, name, waiter_id](int64_t s) { return store_->cancelLock(s, name, waiter_id); }, std::move(done));
}

void MemoryBackend::unlock(const std::string& name, int64_t token, Done done) {
  run([this, name, token](int64_t s) { return store_->unlock(s, name, token); }, std::move(done));
}

void MemoryBackend::verifyLock(const std::string& name, int64_t token, Callback<bool> done) {
  run([this, name, token](int64_t s) { return store_->verifyLock(s, name, token); }, std::move(done));
}

void MemoryBackend::campaign(const std::string& election, const OwnerRecord& owner, const std::string& value,
                             Callback<CampaignResult> done) {
  run([this, election, owner, value](int64_t s) { return store_->campaign(s, election, owner, value); },
      std::move(done));
}

void MemoryBackend::resign(const std::string& election, int64_t term, Done done) {
  run([this, election, term](int64_t s) { return store_->resign(s, election, term); }, std::move(done));
}

void MemoryBackend::verifyCandidacy(const std::string& election, int64_t term, Callback<std::optional<bool>> done) {
  run([this, election, term](int64_t s) { return store_->verifyCandidacy(s, election, term); }, std::move(done));
}

void MemoryBackend::leader(const std::string& election, Callback<std::optional<Candidate>> done) {
  run([this, election](int64_t s) { return store_->leader(s, election); }, std::move(done));
}

void MemoryBackend::watchElection(const std::string& election) {
  executor_.post([this, election] { store_->watchElection(session_, election); });
}

void MemoryBackend::unwatchElection(const std::string& election) {
  executor_.post([this, election] { store_->unwatchElection(session_, election); });
}

void MemoryBackend::listLocks(Callback<std::vector<LockView>> done) {
  run([this](int64_t s) { return store_->listLocks(s); }, std::move(done));
}

void MemoryBackend::lockInfo(const std::string& name, Callback<LockView> done) {
  run([this, name](int64_t s) { return store_->lockInfo(s, name); }, std::move(done));
}

void MemoryBackend::forceUnlock(const std::string& name, Callback<LockHolder> done) {
  run([this, name](int64_t s) { return store_->forceUnlock(s, name); }, std::move(done));
}

void MemoryBackend::listElections(Callback<std::vector<ElectionView>> done) {
  run([this](int64_t s) { return store_->listElections(s); }, std::move(done));
}

void MemoryBackend::electionInfo(const std::string& election, Callback<ElectionView> done) {
  run([this, election](int64_t s) { return store_->electionInfo(s, election); }, std::move(done));
}

void MemoryBackend::stepDown(const std::string& election, Callback<Candidate> done) {
  run([this, election](int64_t s) { return store_->stepDown(s, election); }, std::move(done));
}

void MemoryBackend::registerMember(const Member& self) {
  executor_.post([this, self] {
    self_ = self;
    store_->registerMember(session_, self);
  });
}

void MemoryBackend::listMembers(Callback<std::vector<Member>> done) {
  run([this](int64_t s) { return store_->listMembers(s); }, std::move(done));
}

}  // namespace coordd::backend::memory
