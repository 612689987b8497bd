#include "coordd/primary_loop.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace coordd {
namespace {

// How often a waiting loop looks at `stop`, which nobody signals.
constexpr std::chrono::milliseconds kStopPoll{100};

bool retryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) || absl::IsAborted(status);
}

// Lets a status change cut the wait between two rounds short, so that a
// candidate that becomes primary starts working at once. Shared with the
// callback, which may run after the loop has returned.
class Wakeup {
 public:
  void notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_one();
  }

  // Forgets changes seen so far: the next check reads the current state.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = false;
  }

  void waitFor(absl::Duration interval, bool wake_on_change, const std::atomic<bool>& stop) {
    const auto deadline = BootClock::now() + absl::ToChronoNanoseconds(interval);
    std::unique_lock<std::mutex> lock(mu_);
    while (!(wake_on_change && notified_) && !stop.load()) {
      const auto now = BootClock::now();
      if (now >= deadline) break;
      cv_.wait_until(lock, std::min(deadline, now + kStopPoll));
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status runPrimaryLoop(Session& session, const PrimaryLoopOptions& options,
                            const std::function<void(int64_t term)>& work, const std::atomic<bool>& stop) {
  auto wakeup = std::make_shared<Wakeup>();
  CampaignOptions campaign_options;
  campaign_options.on_change = [wakeup](const ElectionState&) { wakeup->notify(); };

  std::unique_ptr<Election> election;
  int64_t runs = 0;
  while (!stop.load()) {
    wakeup->clear();
    absl::Status status;
    bool again_now = false;
    bool primary = false;
    if (!election) {
      absl::StatusOr<std::unique_ptr<Election>> campaigned =
          session.campaign(options.election, options.value, campaign_options);
      if (campaigned.ok()) {
        election = *std::move(campaigned);
        again_now = true;  // act on the first status without waiting
      } else {
        status = campaigned.status();
      }
    } else if (absl::StatusOr<ElectionState> state = election->checkStatus(); !state.ok()) {
      status = state.status();
    } else if (state->status == ElectionStatus::kPrimary) {
      primary = true;
      work(state->term);
      if (options.step_down_every > 0 && ++runs >= options.step_down_every) {
        runs = 0;
        status = election->resign();
        election.reset();
        again_now = status.ok();
      }
    } else if (state->status == ElectionStatus::kTerminated || state->status == ElectionStatus::kNotCandidate) {
      status = election->rejoin();
    }
    if (!status.ok() && !retryable(status)) return status;
    // A primary works at the pace of `interval`; a waiting candidate checks
    // again as soon as its status changes.
    if (!again_now) wakeup->waitFor(options.interval, !primary, stop);
  }
  return election ? election->resign() : absl::OkStatus();
}

}  // namespace coordd
