#include "cli.h"

#include <grpc/grpc.h>

#include <thread>

#include "absl/base/internal/cycleclock.h"

#include <algorithm>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace coordd::ctl {
namespace {

#ifdef COORDD_VERSION
constexpr absl::string_view kVersion = COORDD_VERSION;
#else
constexpr absl::string_view kVersion = "unknown";
#endif

constexpr absl::string_view kProgram = "coordctl";

constexpr char kGlobalOptions[] = R"(Global options (every command):
  --address ADDR   coordd to talk to: unix:/path, unix:///path or host:port
                   (default: $COORDD_ADDRESS, else unix:/tmp/coordd.sock)
  --json           machine-readable output: one JSON object per line (lock
                   and elect: their reports on stderr; stdout is CMD's)
  -h, --help       help for coordctl or for one command
)";

constexpr char kTopHelp[] = R"(
Exit codes:
  0    success
  1    error (coordd unreachable, refused, ...); the message says what failed
  2    bad usage
  75   lock: the lock is held by someone else
  76   lock: the lock was lost while CMD ran
  126  lock/elect: CMD could not be executed; 127: CMD not found
  N    lock/elect: CMD's own exit code (128+signal if a signal killed it)

Environment:
  COORDD_ADDRESS   default for --address
  COORDD_TLS_CA    for a host:port address (served over TLS only): PEM CA
                   that signed coordd's certificate (default: system roots)
  COORDD_TLS_CERT, COORDD_TLS_KEY
                   this client's certificate and key, when coordd asks (mTLS)

Examples:
  coordctl lock nightly-backup -- /usr/local/bin/backup.sh
  coordctl elect discovery --value "$(hostname):8080" -- ./discovery
  coordctl --json status

Run 'coordctl COMMAND --help' for more about a command.
)";

void printTopHelp(const std::vector<Command>& commands) {
  std::cout << "coordctl " << kVersion << " - command-line client of coordd, the coordination sidecar\n\n"
            << "Usage: coordctl [--address ADDR] [--json] COMMAND [ARGS...]\n\nCommands:\n";
  for (const Command& command : commands) {
    std::cout << "  " << command.name << std::string(12 - std::min<size_t>(command.name.size(), 11), ' ')
              << command.summary << "\n";
  }
  std::cout << "\n" << kGlobalOptions << kTopHelp;
}

void printCommandHelp(const Command& command) {
  std::cout << "Usage: coordctl " << command.usage << "\n\n" << command.help << "\n" << kGlobalOptions;
}

int topUsageError(absl::string_view message) {
  std::cerr << kProgram << ": " << message << "\nTry 'coordctl --help'.\n";
  return kExitUsage;
}

const Command* findCommand(const std::vector<Command>& commands, absl::string_view name) {
  auto it = std::find_if(commands.begin(), commands.end(), [&](const Command& c) { return c.name == name; });
  return it == commands.end() ? nullptr : &*it;
}

const OptionSpec* findOption(const Command& command, absl::string_view name) {
  auto it = std::find_if(command.options.begin(), command.options.end(),
                         [&](const OptionSpec& option) { return option.name == name; });
  return it == command.options.end() ? nullptr : &*it;
}

}  // namespace

std::string Invocation::value(absl::string_view option, std::string fallback) const {
  auto it = options.find(option);
  return it == options.end() ? fallback : it->second;
}

absl::StatusOr<absl::Duration> Invocation::duration(absl::string_view option, absl::Duration fallback) const {
  auto it = options.find(option);
  if (it == options.end()) return fallback;
  absl::Duration parsed;
  if (!absl::ParseDuration(it->second, &parsed) || parsed < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", std::string(option), ": '", it->second, "' is not a duration like 500ms, 5s or 1m"));
  }
  return parsed;
}

int usageError(const Invocation& invocation, absl::string_view message) {
  std::cerr << kProgram << ": " << invocation.command->name << ": " << message << "\nTry 'coordctl "
            << invocation.command->name << " --help'.\n";
  return kExitUsage;
}

int fail(absl::string_view what, const absl::Status& status) {
  std::cerr << kProgram << ": " << what << ": " << status.message() << " (" << absl::StatusCodeToString(status.code())
            << ")\n";
  return kExitError;
}

absl::StatusOr<std::unique_ptr<Client>> connect(const Invocation& invocation) {
  grpc_init();  // never given back: see cli.h
  // The first time a thread queues behind another on an absl::Mutex (gRPC's
  // threads do as they end), Abseil measures the CPU's clock rate by
  // sleeping, 3 ms and more where no sysfs file tells it: done here, beside
  // the command's own work instead of after it.
  std::thread([] { absl::base_internal::CycleClock::Frequency(); }).detach();
  return Client::connect(invocation.address);
}

int runCli(int argc, char** argv, const std::vector<Command>& commands) {
  Invocation invocation;
  bool help = false;
  size_t i = 1;
  // Global options and the command name; options also after the name.
  const auto global = [&](absl::string_view arg) -> std::optional<int> {
    absl::string_view name = arg;
    std::optional<std::string> inline_value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      inline_value = std::string(arg.substr(eq + 1));
    }
    if (arg == "-h" || arg == "--help") {
      help = true;
    } else if (arg == "--json") {
      invocation.json = true;
    } else if (name == "--address") {
      if (inline_value) {
        invocation.address = *inline_value;
      } else if (i + 1 < static_cast<size_t>(argc)) {
        invocation.address = argv[++i];
      } else {
        return topUsageError("--address needs a value");
      }
    } else {
      return std::nullopt;
    }
    return kExitOk;
  };

  for (; i < static_cast<size_t>(argc) && invocation.command == nullptr; ++i) {
    const absl::string_view arg = argv[i];
    if (auto handled = global(arg)) {
      if (*handled != kExitOk) return *handled;
    } else if (arg == "--version") {
      std::cout << "coordctl " << kVersion << "\n";
      return kExitOk;
    } else if (arg == "help") {
      const Command* about = i + 1 < static_cast<size_t>(argc) ? findCommand(commands, argv[i + 1]) : nullptr;
      about != nullptr ? printCommandHelp(*about) : printTopHelp(commands);
      return kExitOk;
    } else if (!arg.empty() && arg[0] == '-') {
      return topUsageError(absl::StrCat("unknown option ", arg));
    } else if ((invocation.command = findCommand(commands, arg)) == nullptr) {
      return topUsageError(absl::StrCat("unknown command '", arg, "'"));
    }
  }
  if (invocation.command == nullptr) {
    if (help) {
      printTopHelp(commands);
      return kExitOk;
    }
    return topUsageError("missing COMMAND");
  }

  const Command& command = *invocation.command;
  bool saw_separator = false;
  for (; i < static_cast<size_t>(argc); ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      saw_separator = true;
      invocation.argv.assign(argv + i + 1, argv + argc);
      break;
    }
    if (auto handled = global(arg)) {
      if (*handled != kExitOk) return *handled;
      continue;
    }
    absl::string_view name = arg;
    if (!absl::ConsumePrefix(&name, "--") || name.empty()) {
      if (arg.size() > 1 && arg[0] == '-') return usageError(invocation, absl::StrCat("unknown option ", name));
      invocation.args.emplace_back(arg);
      continue;
    }
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != absl::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    const OptionSpec* spec = findOption(command, name);
    if (spec == nullptr) return usageError(invocation, absl::StrCat("unknown option --", name));
    std::string value;
    if (!spec->value.empty()) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < static_cast<size_t>(argc)) {
        value = argv[++i];
      } else {
        return usageError(invocation, absl::StrCat("--", name, " needs a value"));
      }
    } else if (inline_value) {
      return usageError(invocation, absl::StrCat("--", name, " takes no value"));
    }
    invocation.options[std::string(name)] = std::move(value);
  }

  if (help) {
    printCommandHelp(command);
    return kExitOk;
  }
  if (invocation.args.size() < command.min_args) {
    return usageError(invocation, absl::StrCat("missing arguments; usage: coordctl ", command.usage));
  }
  if (invocation.args.size() > command.max_args) {
    return usageError(invocation, absl::StrCat("unexpected argument '", invocation.args[command.max_args], "'"));
  }
  if (command.takes_command && invocation.argv.empty()) {
    return usageError(invocation, saw_separator ? "missing CMD after '--'" : "missing '-- CMD [ARG...]'");
  }
  if (!command.takes_command && saw_separator) return usageError(invocation, "takes no command after '--'");
  return command.run(invocation);
}

}  // namespace coordd::ctl
