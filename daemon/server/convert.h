#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "backend/backend.h"
#include "coordd/v1/coordd.pb.h"
#include "core/types.h"

// Translation between the core's types and the API's: one place for each.
namespace coordd::server {

grpc::Status toGrpc(const absl::Status& status);

void toProto(const backend::OwnerRecord& owner, v1::OwnerRecord* out);
void toProto(const backend::Candidate& candidate, v1::Candidate* out);
void toProto(const std::optional<backend::Candidate>& leader, v1::LeaderResponse* out);
v1::LinkState toProto(backend::LinkState state);
v1::LockState toProto(core::LockState state);
v1::CandidateStatus toProto(core::CandidateStatus status);
void toProto(const core::Event& event, v1::KeepAliveResponse* out);

}  // namespace coordd::server
