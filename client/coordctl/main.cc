// coordctl: parse argv, dispatch to a command. Nothing else.

#include <cstdio>
#include <cstdlib>

#include "commands.h"

int main(int argc, char** argv) {
  using namespace coordd::ctl;
  const int code = runCli(argc, argv,
                          {lockCommand(), electCommand(), leaderCommand(), observeCommand(), electionsCommand(),
                           locksCommand(), membersCommand(), statusCommand()});
  // gRPC is still up (connect(), cli.h): no static destructor may run
  // under its threads. LeakSanitizer's exit-time check is skipped with them;
  // the client library's leaks are checked in its own tests.
  std::fflush(nullptr);
  std::_Exit(code);
}
