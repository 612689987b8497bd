#pragma once

#include <map>
#include <string>
#include <vector>

namespace coordd::bench {

// The whole-process cost of one lock-guarded command, as a cron job pays
// it: a client process starts, takes the lock, runs `true`, releases the
// lock and exits. Runs `argv` once (with `env` added to the environment) and
// returns its wall time in milliseconds, from before the fork until its exit
// was seen; throws if it does not exit 0 within 30 s.
double runLockCommandMs(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);

}  // namespace coordd::bench
