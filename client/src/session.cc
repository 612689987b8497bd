#include "coordd/session.h"

#include <utility>

#include "session_core.h"

namespace coordd {

Session::Session(std::shared_ptr<detail::SessionCore> core) : core_(std::move(core)) {}

Session::~Session() { close().IgnoreError(); }

const std::string& Session::id() const { return core_->id(); }

const std::string& Session::nodeId() const { return core_->nodeId(); }

absl::Duration Session::keepaliveWindow() const { return core_->window(); }

Lease Session::lease() const { return core_->lease(); }

absl::StatusOr<TryLockResult> Session::tryLock(std::string name, LockOptions options) {
  absl::StatusOr<detail::AcquireOutcome> outcome = core_->tryLock(std::move(name), std::move(options.on_change));
  if (!outcome.ok()) return outcome.status();
  TryLockResult result;
  if (outcome->entry) {
    result.guard.emplace(LockGuard(core_, std::move(outcome->entry)));
  } else {
    result.holder = std::move(outcome->holder);
  }
  return result;
}

absl::StatusOr<LockGuard> Session::lock(std::string name, absl::Duration timeout, LockOptions options) {
  absl::StatusOr<std::shared_ptr<detail::LockEntry>> entry =
      core_->lock(std::move(name), timeout, std::move(options.on_change));
  if (!entry.ok()) return entry.status();
  return LockGuard(core_, *std::move(entry));
}

absl::StatusOr<std::unique_ptr<Election>> Session::campaign(std::string election, std::string value,
                                                            CampaignOptions options) {
  absl::StatusOr<std::shared_ptr<detail::ElectionEntry>> entry =
      core_->campaign(std::move(election), std::move(value), std::move(options));
  if (!entry.ok()) return entry.status();
  return std::unique_ptr<Election>(new Election(core_, *std::move(entry)));
}

bool Session::ended() const { return core_->ended(); }

std::string Session::endReason() const { return core_->endReason(); }

absl::Status Session::close() { return core_->close(); }

// --- LockGuard ---------------------------------------------------------------

LockGuard::LockGuard(std::shared_ptr<detail::SessionCore> core, std::shared_ptr<detail::LockEntry> entry)
    : core_(std::move(core)), entry_(std::move(entry)) {}

LockGuard::LockGuard(LockGuard&& other) noexcept = default;

LockGuard& LockGuard::operator=(LockGuard&& other) noexcept {
  if (this != &other) {
    release().IgnoreError();
    core_ = std::move(other.core_);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

LockGuard::~LockGuard() { release().IgnoreError(); }

const std::string& LockGuard::name() const { return entry_->name; }

int64_t LockGuard::token() const { return entry_ ? entry_->token.load() : 0; }

bool LockGuard::held() const { return state() == LockState::kHeld; }

LockState LockGuard::state() const {
  if (!entry_) return LockState::kReleased;
  const LockState state = entry_->state.load();
  // The lease ran out before the event thread could say so.
  return state == LockState::kHeld && !core_->leased() ? LockState::kSuspended : state;
}

std::string LockGuard::reason() const {
  if (!entry_) return {};
  if (state() == LockState::kSuspended && entry_->state.load() == LockState::kHeld) return detail::kLeaseExpired;
  std::lock_guard<std::mutex> lock(entry_->mu);
  return entry_->reason;
}

absl::Status LockGuard::release() { return entry_ ? core_->release(*entry_) : absl::OkStatus(); }

// --- Election ----------------------------------------------------------------

Election::Election(std::shared_ptr<detail::SessionCore> core, std::shared_ptr<detail::ElectionEntry> entry)
    : core_(std::move(core)), entry_(std::move(entry)) {}

Election::~Election() { resign().IgnoreError(); }

const std::string& Election::name() const { return entry_->name; }

bool Election::isPrimary() const { return status() == ElectionStatus::kPrimary; }

int64_t Election::term() const { return entry_->term.load(); }

ElectionStatus Election::status() const {
  const ElectionStatus status = entry_->status.load();
  // The lease ran out before the event thread could say so.
  return status == ElectionStatus::kPrimary && !core_->leased() ? ElectionStatus::kSuspended : status;
}

ElectionState Election::state() const {
  std::lock_guard<std::mutex> lock(entry_->mu);
  ElectionState state{entry_->status.load(), entry_->term.load(), entry_->reason};
  if (state.status == ElectionStatus::kPrimary && !core_->leased()) {
    state.status = ElectionStatus::kSuspended;
    state.reason = detail::kLeaseExpired;
  }
  return state;
}

absl::StatusOr<ElectionState> Election::checkStatus() { return core_->checkStatus(*entry_); }

absl::Status Election::rejoin() { return core_->rejoin(*entry_); }

absl::Status Election::resign() { return core_->resign(*entry_); }

}  // namespace coordd
