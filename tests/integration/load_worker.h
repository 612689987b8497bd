#pragma once

#include <optional>
#include <string>
#include <vector>

namespace coordd::e2e {

// A process of the load test: opens `sessions` sessions on one daemon, takes
// `locks` locks in each, and campaigns in an election of its own with each
// session numbered below `elections`; then appends a line to `ready` and
// waits to be killed.
std::vector<std::string> loadWorkerCommand(const std::string& address, int first_session, int sessions, int locks,
                                           int elections, const std::string& ready);
// Runs it when argv asks for it; nullopt otherwise.
std::optional<int> runLoadWorkerIfAsked(int argc, char** argv);

// The names the load test uses.
std::string loadLock(int session, int k);
std::string loadElection(int session);

}  // namespace coordd::e2e
