#include <catch2/catch.hpp>

#include "core/validation.h"
#include "harness.h"

using namespace coordd;
using namespace coordd::testing;

namespace {
bool names(const absl::Status& status, const std::string& field) {
  return absl::IsInvalidArgument(status) && status.message().find(field) != absl::string_view::npos;
}
}  // namespace

TEST_CASE("names: 1 to 512 bytes of UTF-8 without control characters", "[validation]") {
  CHECK(core::validateName("name", "job").ok());
  CHECK(core::validateName("name", "Jörg's lock ✓").ok());
  CHECK(core::validateName("name", std::string(512, 'x')).ok());
  CHECK(names(core::validateName("name", ""), "name"));
  CHECK(names(core::validateName("name", std::string(513, 'x')), "name"));
  CHECK(names(core::validateName("election", "tab\there"), "election"));
  CHECK(names(core::validateName("name", std::string("nul\0x", 5)), "name"));
  CHECK(names(core::validateName("name", "\xC3"), "name"));          // truncated
  CHECK(names(core::validateName("name", "\xC0\xAF"), "name"));      // overlong
  CHECK(names(core::validateName("name", "\xED\xA0\x80"), "name"));  // surrogate
  CHECK(names(core::validateName("name", "\xC2\x85"), "name"));      // C1 control
}

TEST_CASE("bad input is refused with the field named / and changes nothing", "[validation]") {
  Daemon d(newKeeper());
  auto a = d.open();
  CHECK(names(d.tryAcquire(a, "").status(), "name"));
  CHECK(names(d.acquire(a, "job", 0ms).status(), "timeout_ms"));
  CHECK(names(d.campaign(a, "svc", true, std::string(64 * 1024 + 1, 'v')).status(), "value"));
  CHECK(names(d.core.openSession("", 0ms, {}).status(), "owner"));
  CHECK(names(d.core.openSession("x", 500ms, {}).status(), "ttl_ms"));
  CHECK(names(d.core.openSession("x", 301000ms, {}).status(), "ttl_ms"));
  CHECK(names(d.core.openSession("x", 0ms, {{"k", std::string(5000, 'v')}}).status(), "attributes"));
  CHECK(names(d.tryAcquire(Daemon::Client{"", nullptr}, "job").status(), "session_id"));
  CHECK(absl::IsNotFound(d.tryAcquire(Daemon::Client{"ffffffffffffffff", nullptr}, "job").status()));
  auto status = d.core.daemonStatus();
  CHECK(status.sessions == 1);
  CHECK(status.locks_held == 0);
  CHECK(status.candidacies == 0);
  // The well-behaved client is unaffected.
  CHECK(d.tryAcquire(a, "job")->acquired);
}
