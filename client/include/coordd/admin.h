#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordd/types.h"
#include "coordd/v1/coordd.pb.h"

namespace coordd {

namespace detail {
struct Endpoint;
}  // namespace detail

// Operator calls: inspection and intervention, cluster-wide. Allowed on Unix
// socket listeners and from permitted TCP peers (else PERMISSION_DENIED).
//
// NOTE: unlike the application API, this returns the wire messages
// (coordd/v1/coordd.pb.h) as they are: they are exactly the reports an
// operator tool prints, and mirroring each in a library struct would only
// add a second definition to keep in step with the proto. Thread-safe.
class Admin {
 public:
  explicit Admin(std::shared_ptr<const detail::Endpoint> endpoint);

  // This daemon: node id, link state, coordinator session, counts, ready.
  absl::StatusOr<v1::DaemonStatusResponse> status();
  absl::StatusOr<v1::ListElectionsResponse> listElections();
  // Candidates in order, primary first.
  absl::StatusOr<v1::ElectionInfoResponse> electionInfo(absl::string_view election);
  // Forces the primary out; returns it.
  absl::StatusOr<v1::StepDownResponse> stepDown(absl::string_view election);
  absl::StatusOr<v1::ListLocksResponse> listLocks();
  absl::StatusOr<v1::LockInfoResponse> lockInfo(absl::string_view name);
  // Deletes the lock node; its holder gets kLost. Returns the previous holder.
  absl::StatusOr<v1::ForceReleaseResponse> forceRelease(absl::string_view name);
  // Every daemon of the cluster.
  absl::StatusOr<v1::ListMembersResponse> listMembers();

 private:
  std::shared_ptr<const detail::Endpoint> endpoint_;
};

// The library's Owner for a wire OwnerRecord.
Owner toOwner(const v1::OwnerRecord& record);

}  // namespace coordd
