#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_map.h"
#include "core/validation.h"
#include "server/convert.h"
#include "server/services.h"

namespace coordd::server {
namespace {

// "ipv4:127.0.0.1:5000" -> "127.0.0.1"; "ipv6:[::1]:5000" -> "::1".
// Runs `call` when the peer may use Admin, else finishes with
// PERMISSION_DENIED.
template <typename Call>
grpc::ServerUnaryReactor* guarded(grpc::CallbackServerContext* context, absl::Status allowed, Call call) {
  auto* reactor = context->DefaultReactor();
  if (!allowed.ok()) {
    reactor->Finish(toGrpc(allowed));
  } else {
    call(reactor);
  }
  return reactor;
}

// Finishes `reactor` with `result` after `fill` copied a success into the
// response.
template <typename T, typename Fill>
std::function<void(absl::StatusOr<T>)> finishWith(grpc::ServerUnaryReactor* reactor, Fill fill) {
  return [reactor, fill](absl::StatusOr<T> result) {
    if (result.ok()) fill(*result);
    reactor->Finish(toGrpc(core::clientStatus(result.status())));
  };
}

void fillLockInfo(const backend::LockView& view, v1::LockInfoResponse* out) {
  out->set_name(view.name);
  out->set_held(view.holder.has_value());
  if (view.holder) {
    toProto(view.holder->owner, out->mutable_holder());
    out->set_fencing_token(view.holder->token);
  }
  for (const auto& waiter : view.waiters) toProto(waiter, out->add_waiters());
}

}  // namespace

AdminService::AdminService(core::Core& core, backend::Backend& backend, AdminOptions options, const PeerAccess& access)
    : core_(core), backend_(backend), options_(std::move(options)), access_(access), started_(absl::Now()) {}

absl::Status AdminService::allowed(const grpc::CallbackServerContext* context) const {
  return access_.check(*context, PeerAccess::Scope::kAdmin);
}

grpc::ServerUnaryReactor* AdminService::Status(grpc::CallbackServerContext* context,
                                               const v1::DaemonStatusRequest* request,
                                               v1::DaemonStatusResponse* response) {
  return guarded(context, allowed(context), [&](grpc::ServerUnaryReactor* reactor) {
    core::DaemonStatus status = core_.daemonStatus();
    backend::BackendInfo info = backend_.info();
    response->set_node_id(options_.node_id);
    response->set_version(options_.version);
    response->set_backend(info.kind);
    response->set_link(toProto(status.link));
    response->set_coordinator_session(info.session);
    response->set_session_timeout_ms(
        info.session_timeout == absl::InfiniteDuration() ? 0 : absl::ToInt64Milliseconds(info.session_timeout));
    response->set_server(info.server);
    response->set_uptime_ms(absl::ToInt64Milliseconds(absl::Now() - started_));
    response->set_sessions(status.sessions);
    response->set_locks_held(status.locks_held);
    response->set_lock_waiters(status.lock_waiters);
    response->set_candidacies(status.candidacies);
    response->set_ready(status.ready);
    response->set_watch_session(info.watch_session);
    reactor->Finish(grpc::Status::OK);
  });
}

grpc::ServerUnaryReactor* AdminService::ListElections(grpc::CallbackServerContext* context,
                                                      const v1::ListElectionsRequest* request,
                                                      v1::ListElectionsResponse* response) {
  return guarded(context, allowed(context), [&](grpc::ServerUnaryReactor* reactor) {
    backend_.listElections(finishWith<std::vector<backend::ElectionView>>(reactor, [response](const auto& views) {
      for (const auto& view : views) {
        auto* summary = response->add_elections();
        summary->set_election(view.name);
        summary->set_candidates(static_cast<int64_t>(view.candidates.size()));
        if (!view.candidates.empty()) {
          toProto(view.candidates.front().owner, summary->mutable_primary());
          summary->set_term(view.candidates.front().term);
        }
      }
    }));
  });
}

grpc::ServerUnaryReactor* AdminService::ElectionInfo(grpc::CallbackServerContext* context,
                                                     const v1::ElectionInfoRequest* request,
                                                     v1::ElectionInfoResponse* response) {
  absl::Status ok = allowed(context);
  if (ok.ok()) ok = core::validateName("election", request->election());
  return guarded(context, ok, [&](grpc::ServerUnaryReactor* reactor) {
    backend_.electionInfo(request->election(),
                          finishWith<backend::ElectionView>(reactor, [response](const backend::ElectionView& view) {
                            response->set_election(view.name);
                            for (const auto& c : view.candidates) toProto(c, response->add_candidates());
                          }));
  });
}

grpc::ServerUnaryReactor* AdminService::StepDown(grpc::CallbackServerContext* context,
                                                 const v1::StepDownRequest* request, v1::StepDownResponse* response) {
  absl::Status ok = allowed(context);
  if (ok.ok()) ok = core::validateName("election", request->election());
  return guarded(context, ok, [&](grpc::ServerUnaryReactor* reactor) {
    backend_.stepDown(request->election(),
                      finishWith<backend::Candidate>(reactor, [response](const backend::Candidate& previous) {
                        toProto(previous, response->mutable_previous());
                      }));
  });
}

grpc::ServerUnaryReactor* AdminService::ListLocks(grpc::CallbackServerContext* context,
                                                  const v1::ListLocksRequest* request,
                                                  v1::ListLocksResponse* response) {
  return guarded(context, allowed(context), [&](grpc::ServerUnaryReactor* reactor) {
    backend_.listLocks(finishWith<std::vector<backend::LockView>>(reactor, [response](const auto& views) {
      for (const auto& view : views) {
        auto* summary = response->add_locks();
        summary->set_name(view.name);
        if (view.holder) {
          toProto(view.holder->owner, summary->mutable_holder());
          summary->set_fencing_token(view.holder->token);
        }
        summary->set_waiters(static_cast<int64_t>(view.waiters.size()));
      }
    }));
  });
}

grpc::ServerUnaryReactor* AdminService::LockInfo(grpc::CallbackServerContext* context,
                                                 const v1::LockInfoRequest* request, v1::LockInfoResponse* response) {
  absl::Status ok = allowed(context);
  if (ok.ok()) ok = core::validateName("name", request->name());
  return guarded(context, ok, [&](grpc::ServerUnaryReactor* reactor) {
    backend_.lockInfo(request->name(), finishWith<backend::LockView>(
                                           reactor, [response](const auto& view) { fillLockInfo(view, response); }));
  });
}

grpc::ServerUnaryReactor* AdminService::ForceRelease(grpc::CallbackServerContext* context,
                                                     const v1::ForceReleaseRequest* request,
                                                     v1::ForceReleaseResponse* response) {
  absl::Status ok = allowed(context);
  if (ok.ok()) ok = core::validateName("name", request->name());
  return guarded(context, ok, [&](grpc::ServerUnaryReactor* reactor) {
    backend_.forceUnlock(request->name(),
                         finishWith<backend::LockHolder>(reactor, [response](const backend::LockHolder& holder) {
                           toProto(holder.owner, response->mutable_previous());
                           response->set_fencing_token(holder.token);
                         }));
  });
}

grpc::ServerUnaryReactor* AdminService::ListMembers(grpc::CallbackServerContext* context,
                                                    const v1::ListMembersRequest* request,
                                                    v1::ListMembersResponse* response) {
  return guarded(context, allowed(context), [&](grpc::ServerUnaryReactor* reactor) {
    backend_.listMembers(finishWith<std::vector<backend::Member>>(reactor, [response](const auto& members) {
      for (const auto& member : members) {
        auto* out = response->add_members();
        out->set_node_id(member.node_id);
        out->mutable_attributes()->insert(member.attributes.begin(), member.attributes.end());
        out->set_version(member.version);
        out->set_since_ms(absl::ToUnixMillis(member.since));
      }
    }));
  });
}

}  // namespace coordd::server
