#include "server/convert.h"

#include <string>

namespace coordd::server {

grpc::Status toGrpc(const absl::Status& status) {
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

void toProto(const backend::OwnerRecord& owner, v1::OwnerRecord* out) {
  out->set_node_id(owner.node_id);
  out->set_session_id(owner.session_id);
  out->set_owner(owner.label);
  out->mutable_attributes()->insert(owner.attributes.begin(), owner.attributes.end());
}

void toProto(const backend::Candidate& candidate, v1::Candidate* out) {
  toProto(candidate.owner, out->mutable_owner());
  out->set_value(candidate.value);
  out->set_term(candidate.term);
}

void toProto(const std::optional<backend::Candidate>& leader, v1::LeaderResponse* out) {
  out->set_has_leader(leader.has_value());
  if (!leader) return;
  toProto(leader->owner, out->mutable_owner());
  out->set_value(leader->value);
  out->set_term(leader->term);
}

v1::LinkState toProto(backend::LinkState state) {
  switch (state) {
    case backend::LinkState::kConnected:
      return v1::LINK_STATE_CONNECTED;
    case backend::LinkState::kSuspended:
      return v1::LINK_STATE_SUSPENDED;
    case backend::LinkState::kReconnected:
      return v1::LINK_STATE_RECONNECTED;
    case backend::LinkState::kExpired:
      return v1::LINK_STATE_EXPIRED;
  }
  return v1::LINK_STATE_UNSPECIFIED;
}

v1::LockState toProto(core::LockState state) {
  switch (state) {
    case core::LockState::kHeld:
      return v1::LOCK_STATE_HELD;
    case core::LockState::kNotHeld:
      return v1::LOCK_STATE_NOT_HELD;
    case core::LockState::kSuspended:
      return v1::LOCK_STATE_SUSPENDED;
    case core::LockState::kLost:
      return v1::LOCK_STATE_LOST;
    case core::LockState::kRestored:
      return v1::LOCK_STATE_RESTORED;
  }
  return v1::LOCK_STATE_UNSPECIFIED;
}

v1::CandidateStatus toProto(core::CandidateStatus status) {
  switch (status) {
    case core::CandidateStatus::kNotCandidate:
      return v1::CANDIDATE_STATUS_NOT_CANDIDATE;
    case core::CandidateStatus::kPrimary:
      return v1::CANDIDATE_STATUS_PRIMARY;
    case core::CandidateStatus::kSecondary:
      return v1::CANDIDATE_STATUS_SECONDARY;
    case core::CandidateStatus::kSuspended:
      return v1::CANDIDATE_STATUS_SUSPENDED;
    case core::CandidateStatus::kTerminated:
      return v1::CANDIDATE_STATUS_TERMINATED;
  }
  return v1::CANDIDATE_STATUS_UNSPECIFIED;
}

void toProto(const core::Event& event, v1::KeepAliveResponse* out) {
  switch (event.kind) {
    case core::Event::Kind::kHeartbeat: {
      auto* heartbeat = out->mutable_heartbeat();
      heartbeat->set_link(toProto(event.link));
      heartbeat->set_keepalive_window_ms(event.window.count());
      heartbeat->set_ping_id(event.ping_id);
      heartbeat->set_lease_ms(event.lease.count());
      heartbeat->set_margin_ms(event.margin.count());
      break;
    }
    case core::Event::Kind::kLock: {
      auto* lock = out->mutable_lock();
      lock->set_name(event.name);
      lock->set_state(toProto(event.lock_state));
      lock->set_fencing_token(event.token);
      lock->set_reason(event.reason);
      break;
    }
    case core::Event::Kind::kElection: {
      auto* election = out->mutable_election();
      election->set_election(event.name);
      election->set_status(toProto(event.status));
      election->set_term(event.token);
      election->set_reason(event.reason);
      election->set_candidacy(event.candidacy);
      break;
    }
    case core::Event::Kind::kEnded:
      out->mutable_ended()->set_reason(event.reason);
      break;
  }
}

}  // namespace coordd::server
