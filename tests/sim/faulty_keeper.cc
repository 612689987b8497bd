#include "faulty_keeper.h"

#include "absl/strings/str_format.h"

namespace coordd::sim {

using backend::keeper::Code;
using backend::keeper::Result;

FaultyKeeper::FaultyKeeper(std::unique_ptr<Keeper> inner, Post post, World& world, const double& loss,
                           std::function<void(int64_t)> drop, FaultCounts& counts, std::function<void()> on_call,
                           std::function<void(const std::string&)> trace)
    : inner_(std::move(inner)),
      post_(std::move(post)),
      world_(world),
      loss_(loss),
      drop_(std::move(drop)),
      counts_(counts),
      on_call_(std::move(on_call)),
      trace_(std::move(trace)) {}

void FaultyKeeper::call(Done done, Watch* watch, const std::function<void(Done)>& issue) {
  on_call_();
  if (!world_.chance(loss_)) return issue(std::move(done));
  if (watch != nullptr) *watch = nullptr;
  Result lost;
  lost.code = Code::kConnectionLoss;
  if (world_.chance(0.5)) {
    ++counts_["answer lost, request not applied"];
    post_([done = std::move(done), lost] { done(lost); });
  } else {
    ++counts_["answer lost, request applied"];
    issue([done = std::move(done), lost](const Result&) { done(lost); });
  }
  drop_(inner_->sessionId());
}

void FaultyKeeper::create(const std::string& path, const std::string& data, backend::keeper::CreateMode mode,
                          Done done) {
  if (trace_) {
    done = [this, path, done = std::move(done)](const Result& r) {
      trace_(absl::StrFormat("0x%x create %s: %s %s czxid %d", inner_->sessionId(), path,
                             backend::keeper::codeName(r.code), r.path, r.stat.czxid));
      done(r);
    };
  }
  call(std::move(done), nullptr, [&](Done d) { inner_->create(path, data, mode, std::move(d)); });
}

void FaultyKeeper::get(const std::string& path, Done done) {
  call(std::move(done), nullptr, [&](Done d) { inner_->get(path, std::move(d)); });
}

void FaultyKeeper::exists(const std::string& path, Watch watch, Done done) {
  call(std::move(done), &watch, [&](Done d) { inner_->exists(path, std::move(watch), std::move(d)); });
}

void FaultyKeeper::children(const std::string& path, Watch watch, Done done) {
  call(std::move(done), &watch, [&](Done d) { inner_->children(path, std::move(watch), std::move(d)); });
}

void FaultyKeeper::remove(const std::string& path, int32_t version, Done done) {
  if (trace_) {
    trace_(absl::StrFormat("0x%x delete %s", inner_->sessionId(), path));
    done = [this, path, done = std::move(done)](const Result& r) {
      trace_(absl::StrFormat("0x%x delete %s: %s", inner_->sessionId(), path, backend::keeper::codeName(r.code)));
      done(r);
    };
  }
  call(std::move(done), nullptr, [&](Done d) { inner_->remove(path, version, std::move(d)); });
}

void FaultyKeeper::sync(const std::string& path, Done done) {
  call(std::move(done), nullptr, [&](Done d) { inner_->sync(path, std::move(d)); });
}

}  // namespace coordd::sim
