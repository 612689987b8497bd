#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "coordd/v1/coordd.grpc.pb.h"
#include "core/core.h"
#include "server/client_processes.h"
#include "server/peer_access.h"

// The four coordd services. Each validates its input (through the core),
// calls the core or, for cluster-wide reads and admin actions, the backend,
// and maps the result. Nothing here holds state of its own beyond a stream.
namespace coordd::server {

// A call `access` refuses: its reactor, finished with PERMISSION_DENIED;
// nullptr when the call may go on.
grpc::ServerUnaryReactor* refuse(grpc::CallbackServerContext* context, const PeerAccess& access,
                                 PeerAccess::Scope scope = PeerAccess::Scope::kApi);

class SessionsService final : public v1::Sessions::CallbackService {
 public:
  SessionsService(core::Core& core, const PeerAccess& access) : core_(core), access_(access) {}

  grpc::ServerUnaryReactor* Open(grpc::CallbackServerContext* context, const v1::OpenRequest* request,
                                 v1::OpenResponse* response) override;
  grpc::ServerBidiReactor<v1::KeepAliveRequest, v1::KeepAliveResponse>* KeepAlive(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Close(grpc::CallbackServerContext* context, const v1::CloseRequest* request,
                                  v1::CloseResponse* response) override;

 private:
  core::Core& core_;
  const PeerAccess& access_;
  ClientProcessTable processes_;
};

class LocksService final : public v1::Locks::CallbackService {
 public:
  LocksService(core::Core& core, const PeerAccess& access) : core_(core), access_(access) {}

  grpc::ServerUnaryReactor* TryAcquire(grpc::CallbackServerContext* context, const v1::TryAcquireRequest* request,
                                       v1::TryAcquireResponse* response) override;
  grpc::ServerUnaryReactor* Acquire(grpc::CallbackServerContext* context, const v1::AcquireRequest* request,
                                    v1::AcquireResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context, const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context, const v1::CheckRequest* request,
                                  v1::CheckResponse* response) override;

 private:
  core::Core& core_;
  const PeerAccess& access_;
};

class ElectionsService final : public v1::Elections::CallbackService {
 public:
  ElectionsService(core::Core& core, backend::Backend& backend, const PeerAccess& access)
      : core_(core), backend_(backend), access_(access) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* context, const v1::CampaignRequest* request,
                                     v1::CampaignResponse* response) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context, const v1::StatusRequest* request,
                                   v1::StatusResponse* response) override;
  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* context, const v1::ResignRequest* request,
                                   v1::ResignResponse* response) override;
  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* context, const v1::LeaderRequest* request,
                                   v1::LeaderResponse* response) override;
  grpc::ServerWriteReactor<v1::LeaderResponse>* Observe(grpc::CallbackServerContext* context,
                                                        const v1::ObserveRequest* request) override;

 private:
  core::Core& core_;
  backend::Backend& backend_;
  const PeerAccess& access_;
};

struct AdminOptions {
  std::string version;
  std::string node_id;
};

class AdminService final : public v1::Admin::CallbackService {
 public:
  AdminService(core::Core& core, backend::Backend& backend, AdminOptions options, const PeerAccess& access);

  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context, const v1::DaemonStatusRequest* request,
                                   v1::DaemonStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListElections(grpc::CallbackServerContext* context, const v1::ListElectionsRequest* request,
                                          v1::ListElectionsResponse* response) override;
  grpc::ServerUnaryReactor* ElectionInfo(grpc::CallbackServerContext* context, const v1::ElectionInfoRequest* request,
                                         v1::ElectionInfoResponse* response) override;
  grpc::ServerUnaryReactor* StepDown(grpc::CallbackServerContext* context, const v1::StepDownRequest* request,
                                     v1::StepDownResponse* response) override;
  grpc::ServerUnaryReactor* ListLocks(grpc::CallbackServerContext* context, const v1::ListLocksRequest* request,
                                      v1::ListLocksResponse* response) override;
  grpc::ServerUnaryReactor* LockInfo(grpc::CallbackServerContext* context, const v1::LockInfoRequest* request,
                                     v1::LockInfoResponse* response) override;
  grpc::ServerUnaryReactor* ForceRelease(grpc::CallbackServerContext* context, const v1::ForceReleaseRequest* request,
                                         v1::ForceReleaseResponse* response) override;
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* context, const v1::ListMembersRequest* request,
                                        v1::ListMembersResponse* response) override;

 private:
  absl::Status allowed(const grpc::CallbackServerContext* context) const;

  core::Core& core_;
  backend::Backend& backend_;
  const AdminOptions options_;
  const PeerAccess& access_;
  const absl::Time started_;
};

}  // namespace coordd::server
