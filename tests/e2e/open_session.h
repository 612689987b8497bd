#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "coordd/client.h"

namespace coordd::e2e {

// A library session on `client`; the test fails if the daemon refuses it.
inline std::unique_ptr<coordd::Session> open(coordd::Client& client, const std::string& owner,
                                             absl::Duration ttl = absl::Seconds(10)) {
  coordd::SessionOptions options;
  options.owner = owner;
  options.ttl = ttl;
  auto session = client.openSession(options);
  REQUIRE(session.ok());
  return std::move(*session);
}

}  // namespace coordd::e2e
