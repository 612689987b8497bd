#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/convert.h"
#include "server/services.h"
#include "server/stream_writer.h"

namespace coordd::server {
namespace {

constexpr int kMaxGuardPids = 8;

using KeepAliveReactorBase = grpc::ServerBidiReactor<v1::KeepAliveRequest, v1::KeepAliveResponse>;

// The write side of one KeepAlive stream, shared with the core.
class StreamSink final : public core::EventSink {
 public:
  StreamSink(KeepAliveReactorBase* reactor, size_t max_queued) : writer_(reactor, max_queued) {}

  void send(const core::Event& event) override {
    v1::KeepAliveResponse message;
    toProto(event, &message);
    writer_.write(std::move(message), keyOf(event));
  }
  void close() override {
    closed_by_daemon_ = true;
    writer_.finish(grpc::Status::OK);
  }
  bool closedByDaemon() const { return closed_by_daemon_; }
  StreamWriter<KeepAliveReactorBase, v1::KeepAliveResponse>& writer() { return writer_; }

 private:
  // A hold's events replace each other while queued (the latest state is
  // what counts); a lock's by name and token, so that a new grant never
  // hides the LOST of the one before.
  static std::string keyOf(const core::Event& event) {
    switch (event.kind) {
      case core::Event::Kind::kLock:
        return absl::StrCat("lock/", event.token, "/", event.name);
      case core::Event::Kind::kElection:
        return absl::StrCat("election/", event.name);
      case core::Event::Kind::kHeartbeat:
      case core::Event::Kind::kEnded:
        return "";
    }
    return "";
  }

  StreamWriter<KeepAliveReactorBase, v1::KeepAliveResponse> writer_;
  std::atomic<bool> closed_by_daemon_{false};
};

class KeepAliveReactor final : public KeepAliveReactorBase {
 public:
  KeepAliveReactor(core::Core& core, size_t max_queued)
      : core_(core), sink_(std::make_shared<StreamSink>(this, max_queued)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // Half-close or a broken connection: the stream is done; whether the
      // client is too, the core decides (see Core::detachStream).
      sink_->writer().abort(grpc::Status::OK);
      return;
    }
    absl::Status status;
    if (session_id_.empty()) {
      status = core_.attachStream(request_.session_id(), sink_, request_.ping_id());
      if (status.ok()) session_id_ = request_.session_id();
    } else if (!request_.session_id().empty() && request_.session_id() != session_id_) {
      status = absl::InvalidArgumentError("session_id: differs from the session this stream keeps alive");
    } else {
      status = core_.ping(session_id_, request_.ping_id());
    }
    if (!status.ok()) {
      sink_->writer().abort(toGrpc(status));
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override { sink_->writer().onWriteDone(ok); }

  void OnDone() override {
    sink_->writer().detach();
    // A stream the daemon did not end: the client may be gone.
    if (!sink_->closedByDaemon() && !session_id_.empty()) core_.detachStream(session_id_, sink_.get());
    delete this;
  }

 private:
  core::Core& core_;
  std::shared_ptr<StreamSink> sink_;
  v1::KeepAliveRequest request_;
  std::string session_id_;  // set once the first request bound the stream
};

}  // namespace

grpc::ServerUnaryReactor* SessionsService::Open(grpc::CallbackServerContext* context, const v1::OpenRequest* request,
                                                v1::OpenResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  if (request->client_pid() < 0) {
    reactor->Finish(toGrpc(absl::InvalidArgumentError("client_pid: must not be negative")));
    return reactor;
  }
  if (request->guard_pids_size() > kMaxGuardPids) {
    reactor->Finish(toGrpc(absl::InvalidArgumentError(
        absl::StrCat("guard_pids: ", request->guard_pids_size(), " given, at most ", kMaxGuardPids))));
    return reactor;
  }
  for (int32_t pid : request->guard_pids()) {
    if (pid <= 0) {
      reactor->Finish(toGrpc(absl::InvalidArgumentError(absl::StrCat("guard_pids: ", pid, " is not a pid"))));
      return reactor;
    }
  }
  std::shared_ptr<const core::ClientProcesses> processes;
  if (const std::optional<PeerCredentials> peer = access_.peerOf(*context)) {
    processes = processes_.watch(*peer, request->client_pid(),
                                 std::vector<pid_t>(request->guard_pids().begin(), request->guard_pids().end()));
  }
  std::map<std::string, std::string> attributes(request->attributes().begin(), request->attributes().end());
  auto info = core_.openSession(request->owner(), std::chrono::milliseconds(request->ttl_ms()), attributes,
                                std::move(processes));
  if (info.ok()) {
    response->set_session_id(info->session_id);
    response->set_ttl_ms(info->ttl.count());
    response->set_keepalive_window_ms(info->window.count());
    response->set_node_id(info->node_id);
  }
  reactor->Finish(toGrpc(info.status()));
  return reactor;
}

grpc::ServerBidiReactor<v1::KeepAliveRequest, v1::KeepAliveResponse>* SessionsService::KeepAlive(
    grpc::CallbackServerContext* context) {
  if (absl::Status status = access_.check(*context, PeerAccess::Scope::kApi); !status.ok()) {
    return new Refused<KeepAliveReactorBase>(toGrpc(status));
  }
  // Room for an event of every hold at once (a reconnect restores them all),
  // and for the heartbeats of a slow reader.
  const size_t max_queued = static_cast<size_t>(2 * core_.limits().max_holds_per_session) +
                            StreamWriter<KeepAliveReactorBase, v1::KeepAliveResponse>::kMaxQueued;
  return new KeepAliveReactor(core_, max_queued);
}

grpc::ServerUnaryReactor* SessionsService::Close(grpc::CallbackServerContext* context, const v1::CloseRequest* request,
                                                 v1::CloseResponse* response) {
  if (auto* refused = refuse(context, access_)) return refused;
  auto* reactor = context->DefaultReactor();
  core_.closeSession(request->session_id(), [reactor](absl::Status status) { reactor->Finish(toGrpc(status)); });
  return reactor;
}

}  // namespace coordd::server
