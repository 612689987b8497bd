// Leases on CLOCK_BOOTTIME, which goes on counting while the host is
// suspended. A suspend cannot be made here; a time namespace whose boot
// clock is far ahead of its monotonic clock tells the two apart instead
// (ctest runs this under `unshare -U -r -T --boottime 1000000`): a lease
// computed on the monotonic clock would be a million seconds in the past.
#include <signal.h>
#include <time.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "coordd/client.h"
#include "harness.h"
#include "open_session.h"

using namespace coordd::e2e;

namespace {

std::chrono::nanoseconds raw(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

TEST_CASE("boot clock: leases - the library's and coordctl's watchdog's - are on CLOCK_BOOTTIME", "[.boottime]") {
  INFO(
      "run in a time namespace whose boot clock is ahead: unshare -U -r -T --boottime 1000000 coordd_e2e_tests "
      "[boottime]");
  REQUIRE(raw(CLOCK_BOOTTIME) - raw(CLOCK_MONOTONIC) > std::chrono::hours(24));

  Daemon daemon;
  auto client = coordd::Client::connect(daemon.address()).value();
  auto session = open(*client, "alpha", absl::Seconds(3));
  auto got = session->tryLock("job");
  REQUIRE(got.ok());
  REQUIRE(got->acquired());
  const auto before = raw(CLOCK_BOOTTIME);
  const coordd::Lease lease = session->lease();
  const auto after = raw(CLOCK_BOOTTIME);
  // In nanoseconds of CLOCK_BOOTTIME.
  CHECK(lease.valid_until.time_since_epoch().count() > before.count());
  CHECK(lease.valid_until.time_since_epoch().count() <= (after + std::chrono::seconds(3)).count());
  CHECK(got->guard->held());

  // coordctl's watchdog stops CMD when the lease runs out, on the same
  // clock: with coordctl frozen nothing renews it, and CMD gets SIGTERM.
  const std::string cmd_pid = daemon.dir().file("cmd.pid");
  auto holder = daemon.startCoordctl(
      {"lock", "guarded", "--ttl", "2s", "--", "/bin/sh", "-c", "echo $$ > " + cmd_pid + "; exec sleep 60"});
  REQUIRE(eventually([&] { return !readFile(cmd_pid).empty(); }));
  int pid = 0;
  REQUIRE(absl::SimpleAtoi(absl::StripAsciiWhitespace(readFile(cmd_pid)), &pid));
  // Renewed while coordctl runs: not stopped at once, as it would be with a
  // lease read on one clock and compared on the other.
  REQUIRE(daemon.coordctl({"locks", "info", "guarded"}).code == 0);
  CHECK(::kill(pid, 0) == 0);
  holder->signal(SIGSTOP);
  CHECK(eventually([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(10)));
  holder->signal(SIGCONT);
  auto code = holder->wait(std::chrono::seconds(10));
  REQUIRE(code.has_value());
  CHECK(*code == 76);
}
