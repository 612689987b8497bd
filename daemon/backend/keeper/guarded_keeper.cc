#include "backend/keeper/guarded_keeper.h"

namespace coordd::backend::keeper {

GuardedKeeper::GuardedKeeper(std::unique_ptr<Keeper> inner, std::function<bool()> current)
    : current_(std::move(current)), inner_(std::move(inner)) {}

Keeper::Done GuardedKeeper::guarded(Done done) const {
  return [current = current_, done = std::move(done)](const Result& result) {
    if (current()) return done(result);
    Result closed;
    closed.code = Code::kClosing;
    done(closed);
  };
}

Keeper::Watch GuardedKeeper::guarded(Watch watch) const {
  if (!watch) return watch;
  return [current = current_, watch = std::move(watch)](WatchEvent event) {
    if (current()) watch(event);
  };
}

void GuardedKeeper::create(const std::string& path, const std::string& data, CreateMode mode, Done done) {
  inner_->create(path, data, mode, guarded(std::move(done)));
}

void GuardedKeeper::get(const std::string& path, Done done) { inner_->get(path, guarded(std::move(done))); }

void GuardedKeeper::exists(const std::string& path, Watch watch, Done done) {
  inner_->exists(path, guarded(std::move(watch)), guarded(std::move(done)));
}

void GuardedKeeper::children(const std::string& path, Watch watch, Done done) {
  inner_->children(path, guarded(std::move(watch)), guarded(std::move(done)));
}

void GuardedKeeper::remove(const std::string& path, int32_t version, Done done) {
  inner_->remove(path, version, guarded(std::move(done)));
}

void GuardedKeeper::sync(const std::string& path, Done done) { inner_->sync(path, guarded(std::move(done))); }

void GuardedKeeper::multi(std::vector<Op> ops, Done done) { inner_->multi(std::move(ops), guarded(std::move(done))); }

}  // namespace coordd::backend::keeper
