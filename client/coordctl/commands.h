#pragma once

// Every coordctl command, one per function; each lives in its own file.

#include "cli.h"

namespace coordd::ctl {

Command lockCommand();       // lock_cmd.cc
Command electCommand();      // elect_cmd.cc
Command leaderCommand();     // watch_cmds.cc
Command observeCommand();    // watch_cmds.cc
Command electionsCommand();  // admin_cmds.cc
Command locksCommand();      // admin_cmds.cc
Command membersCommand();    // admin_cmds.cc
Command statusCommand();     // admin_cmds.cc

}  // namespace coordd::ctl
