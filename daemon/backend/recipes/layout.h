#pragma once

#include <optional>
#include <string>

#include "backend/backend.h"

// Replicante's ZooKeeper layout and payloads (DESIGN.md "ZooKeeper layout"),
// so that Replicante's own coordinator and coordd exclude each other on the
// same names and read each other's nodes.
namespace coordd::backend::recipes {

std::string sha256Hex(const std::string& data);

// Paths under the chroot `root` ("" or "/replicante").
class Layout {
 public:
  explicit Layout(std::string root) : root_(std::move(root)) {}

  const std::string& root() const { return root_; }
  std::string locks() const { return root_ + "/locks"; }
  std::string elections() const { return root_ + "/elections"; }
  std::string nodes() const { return root_ + "/nodes"; }
  std::string waiters() const { return root_ + "/lock-waiters"; }

  // /locks/<first 4 hex of sha256>/<sha256hex(name)>
  std::string lock(const std::string& name) const;
  // /lock-waiters/<first 4 hex>/<sha256hex(name)>: the FIFO queue of
  // blocking acquirers, sequential children "waiter-".
  std::string waiterQueue(const std::string& name) const;
  // /elections/<sha256hex(name)>, children "candidate-<10 digits>".
  std::string election(const std::string& name) const;
  // /nodes/<first 4 hex of id>/<id>
  std::string member(const std::string& node_id) const;

 private:
  std::string root_;
};

// Payloads. NodeId is {"id": "<32 hex>", "extra": {...}}; coordd keeps the
// client session, owner label and attributes in "extra" (Replicante ignores
// unknown fields).
std::string encodeLock(const std::string& name, const OwnerRecord& owner);
std::string encodeCandidate(const OwnerRecord& owner, const std::string& value);
std::string encodeElection(const std::string& name);
std::string encodeMember(const Member& member);

struct DecodedNode {
  std::string name;  // lock or election name, when the payload has one
  OwnerRecord owner;
  std::string value;  // candidate value
};
// Tolerant: a foreign or malformed payload yields what could be read.
DecodedNode decodeNode(const std::string& data);
Member decodeMember(const std::string& data);

}  // namespace coordd::backend::recipes
