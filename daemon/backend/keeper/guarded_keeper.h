#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backend/keeper/keeper.h"

namespace coordd::backend::keeper {

// A keeper session that its owner can leave behind: once `current()` is
// false (the owner closed the session, or replaced it after an expiry),
// every answer still to be run reads kClosing and no watch fires, whatever
// the server said and in whatever order the answers reach the owner's
// thread. So a chain of calls ends at its next answer instead of going on
// without a session, or on the next one.
//
// `current` is called on the thread that runs the answers.
class GuardedKeeper : public Keeper {
 public:
  GuardedKeeper(std::unique_ptr<Keeper> inner, std::function<bool()> current);

  void create(const std::string& path, const std::string& data, CreateMode mode, Done done) override;
  void get(const std::string& path, Done done) override;
  void exists(const std::string& path, Watch watch, Done done) override;
  void children(const std::string& path, Watch watch, Done done) override;
  void remove(const std::string& path, int32_t version, Done done) override;
  void sync(const std::string& path, Done done) override;
  void multi(std::vector<Op> ops, Done done) override;
  int64_t sessionId() const override { return inner_->sessionId(); }
  int64_t negotiatedTimeoutMs() const override { return inner_->negotiatedTimeoutMs(); }
  std::string server() const override { return inner_->server(); }

 private:
  Done guarded(Done done) const;
  Watch guarded(Watch watch) const;

  const std::function<bool()> current_;
  const std::unique_ptr<Keeper> inner_;  // after current_: closed first
};

}  // namespace coordd::backend::keeper
