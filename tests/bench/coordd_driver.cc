#include "coordd_driver.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace coordd::bench {

CoorddLockDriver::CoorddLockDriver(const std::string& address) {
  auto client = Client::connect(address);
  if (!client.ok()) throw std::runtime_error(client.status().ToString());
  client_ = std::move(*client);
}

void CoorddLockDriver::prepare(int clients) {
  for (int k = static_cast<int>(sessions_.size()); k < clients; ++k) {
    SessionOptions options;
    options.owner = absl::StrCat("bench-client-", k);
    auto session = client_->openSession(std::move(options));
    if (!session.ok()) throw std::runtime_error("coordd session: " + session.status().ToString());
    sessions_.push_back(std::move(*session));
    names_.push_back(absl::StrCat("bench-cycle-", k));
  }
}

absl::Status CoorddLockDriver::cycle(int client) {
  const auto k = static_cast<size_t>(client);
  absl::StatusOr<TryLockResult> result = sessions_[k]->tryLock(names_[k]);
  if (!result.ok()) return result.status();
  if (!result->acquired()) return absl::AbortedError(absl::StrCat(names_[k], " held by ", result->holder.owner));
  return result->guard->release();
}

}  // namespace coordd::bench
