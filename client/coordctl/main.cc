// coordctl: parse argv, dispatch to a command. Nothing else.

#include "commands.h"

int main(int argc, char** argv) {
  using namespace coordd::ctl;
  return runCli(argc, argv,
                {lockCommand(), electCommand(), leaderCommand(), observeCommand(), electionsCommand(), locksCommand(),
                 membersCommand(), statusCommand()});
}
