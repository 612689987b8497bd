#include <atomic>
#include <memory>

#include "core/status_map.h"
#include "core/validation.h"
#include "server/cancellable_call.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/stream_writer.h"

namespace coordd::server {
namespace {

using ObserveReactorBase = grpc::ServerWriteReactor<v1::LeaderResponse>;

class LeaderStream final : public core::LeaderObserver {
 public:
  explicit LeaderStream(ObserveReactorBase* reactor) : writer_(reactor) {}

  void onLeader(const std::optional<backend::Candidate>& leader) override {
    v1::LeaderResponse message;
    toProto(leader, &message);
    writer_.write(std::move(message));
  }
  void onClosed(const std::string& reason) override { writer_.finish(grpc::Status(grpc::UNAVAILABLE, reason)); }
  StreamWriter<ObserveReactorBase, v1::LeaderResponse>& writer() { return writer_; }

 private:
  StreamWriter<ObserveReactorBase, v1::LeaderResponse> writer_;
};

class ObserveReactor final : public ObserveReactorBase {
 public:
  ObserveReactor(core::Core& core, const std::string& election)
      : core_(core), stream_(std::make_shared<LeaderStream>(this)) {
    auto id = core_.addObserver(election, stream_);
    if (id.ok()) {
      observer_id_ = *id;
    } else {
      stream_->writer().finish(toGrpc(id.status()));
    }
  }

  void OnWriteDone(bool ok) override { stream_->writer().onWriteDone(ok); }
  void OnCancel() override { stream_->writer().abort(grpc::Status::CANCELLED); }
  void OnDone() override {
    stream_->writer().detach();
    if (observer_id_ != 0) core_.removeObserver(observer_id_);
    delete this;
  }

 private:
  core::Core& core_;
  std::shared_ptr<LeaderStream> stream_;
  std::atomic<int64_t> observer_id_{0};
};

void fillStatus(const core::ElectionStatus& status, v1::StatusResponse* out) {
  out->set_status(toProto(status.status));
  out->set_term(status.term);
  out->set_reason(status.reason);
}

}  // namespace

grpc::ServerUnaryReactor* ElectionsService::Campaign(grpc::CallbackServerContext* context,
                                                     const v1::CampaignRequest* request,
                                                     v1::CampaignResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  bool rejoin = request->has_rejoin() ? request->rejoin() : true;
  return new CancellableCall(core_, [&](CancellableCall::Done finish) {
    return core_.campaign(request->session_id(), request->election(), request->value(), rejoin,
                          [finish, response](absl::StatusOr<core::ElectionStatus> status) {
                            if (status.ok()) {
                              response->set_status(toProto(status->status));
                              response->set_term(status->term);
                              response->set_candidacy(status->candidacy);
                            }
                            finish(toGrpc(status.status()));
                          });
  });
}

grpc::ServerUnaryReactor* ElectionsService::Status(grpc::CallbackServerContext* context,
                                                   const v1::StatusRequest* request, v1::StatusResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  auto status = core_.status(request->session_id(), request->election());
  if (status.ok()) fillStatus(*status, response);
  reactor->Finish(toGrpc(status.status()));
  return reactor;
}

grpc::ServerUnaryReactor* ElectionsService::Resign(grpc::CallbackServerContext* context,
                                                   const v1::ResignRequest* request, v1::ResignResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  core_.resign(request->session_id(), request->election(),
               [reactor](absl::Status status) { reactor->Finish(toGrpc(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* ElectionsService::Leader(grpc::CallbackServerContext* context,
                                                   const v1::LeaderRequest* request, v1::LeaderResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  if (auto status = core::validateName("election", request->election()); !status.ok()) {
    reactor->Finish(toGrpc(status));
    return reactor;
  }
  backend_.leader(request->election(), [reactor, response](absl::StatusOr<std::optional<backend::Candidate>> leader) {
    if (leader.ok()) toProto(*leader, response);
    reactor->Finish(toGrpc(core::clientStatus(leader.status())));
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::LeaderResponse>* ElectionsService::Observe(grpc::CallbackServerContext* context,
                                                                        const v1::ObserveRequest* request) {
  if (absl::Status status = access_.check(*context, PeerAccess::Scope::kApi); !status.ok()) {
    return new Refused<grpc::ServerWriteReactor<v1::LeaderResponse>>(toGrpc(status));
  }
  return new ObserveReactor(core_, request->election());
}

}  // namespace coordd::server
