#include "coordd/admin.h"

#include <string>
#include <utility>

#include "rpc.h"

namespace coordd {
namespace {

// One Admin RPC: `method` is the stub's member function for it.
template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> call(const detail::Endpoint& endpoint, Method method, const Request& request) {
  auto stub = v1::Admin::NewStub(endpoint.channel);
  Response response;
  const absl::Status status = detail::unary(endpoint, detail::kCallTimeout, [&](grpc::ClientContext* context) {
    return ((*stub).*method)(context, request, &response);
  });
  if (!status.ok()) return status;
  return response;
}

}  // namespace

Admin::Admin(std::shared_ptr<const detail::Endpoint> endpoint) : endpoint_(std::move(endpoint)) {}

absl::StatusOr<v1::DaemonStatusResponse> Admin::status() {
  return call<v1::DaemonStatusRequest, v1::DaemonStatusResponse>(*endpoint_, &v1::Admin::Stub::Status, {});
}

absl::StatusOr<v1::ListElectionsResponse> Admin::listElections() {
  return call<v1::ListElectionsRequest, v1::ListElectionsResponse>(*endpoint_, &v1::Admin::Stub::ListElections, {});
}

absl::StatusOr<v1::ElectionInfoResponse> Admin::electionInfo(absl::string_view election) {
  v1::ElectionInfoRequest request;
  request.set_election(std::string(election));
  return call<v1::ElectionInfoRequest, v1::ElectionInfoResponse>(*endpoint_, &v1::Admin::Stub::ElectionInfo, request);
}

absl::StatusOr<v1::StepDownResponse> Admin::stepDown(absl::string_view election) {
  v1::StepDownRequest request;
  request.set_election(std::string(election));
  return call<v1::StepDownRequest, v1::StepDownResponse>(*endpoint_, &v1::Admin::Stub::StepDown, request);
}

absl::StatusOr<v1::ListLocksResponse> Admin::listLocks() {
  return call<v1::ListLocksRequest, v1::ListLocksResponse>(*endpoint_, &v1::Admin::Stub::ListLocks, {});
}

absl::StatusOr<v1::LockInfoResponse> Admin::lockInfo(absl::string_view name) {
  v1::LockInfoRequest request;
  request.set_name(std::string(name));
  return call<v1::LockInfoRequest, v1::LockInfoResponse>(*endpoint_, &v1::Admin::Stub::LockInfo, request);
}

absl::StatusOr<v1::ForceReleaseResponse> Admin::forceRelease(absl::string_view name) {
  v1::ForceReleaseRequest request;
  request.set_name(std::string(name));
  return call<v1::ForceReleaseRequest, v1::ForceReleaseResponse>(*endpoint_, &v1::Admin::Stub::ForceRelease, request);
}

absl::StatusOr<v1::ListMembersResponse> Admin::listMembers() {
  return call<v1::ListMembersRequest, v1::ListMembersResponse>(*endpoint_, &v1::Admin::Stub::ListMembers, {});
}

}  // namespace coordd
