#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace coordd::config {
namespace {

enum class Shape { kScalar, kList, kMap };

// One option: its YAML key, its flag, and how a textual value is applied.
struct Option {
  std::string key;
  std::string flag;
  Shape shape;
  std::string help;
  std::function<absl::Status(Config&, const std::string&)> apply;
};

absl::Status bad(const std::string& value, const std::string& expected) {
  return absl::InvalidArgumentError(absl::StrCat("expected ", expected, ", got '", value, "'"));
}

absl::Status parsePositive(const std::string& value, int64_t& out) {
  if (!absl::SimpleAtoi(value, &out) || out < 1) return bad(value, "a positive integer");
  return absl::OkStatus();
}

absl::Status validateListen(const std::string& value) {
  if (absl::StartsWith(value, "unix:")) {
    if (value.size() <= 5 || value[5] != '/') return bad(value, "unix:/absolute/path");
    return absl::OkStatus();
  }
  size_t colon = value.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return bad(value, "unix:/path or host:port");
  }
  return absl::OkStatus();
}

const std::vector<Option>& options() {
  static const std::vector<Option> kOptions = {
      {"listen", "--listen", Shape::kList,
       "Address to serve on, repeatable: unix:/path or host:port (TCP, off by default). "
       "Default unix:/tmp/coordd.sock.",
       [](Config& c, const std::string& v) {
         if (auto status = validateListen(v); !status.ok()) return status;
         c.listen.push_back(v);
         return absl::OkStatus();
       }},
      {"socket_mode", "--socket-mode", Shape::kScalar, "File mode of Unix sockets, octal. Default 0660.",
       [](Config& c, const std::string& v) {
         char* end = nullptr;
         unsigned long mode = std::strtoul(v.c_str(), &end, 8);
         if (v.empty() || *end != '\0' || mode > 0777) return bad(v, "an octal file mode such as 0660");
         c.socket_mode = static_cast<mode_t>(mode);
         return absl::OkStatus();
       }},
      {"log_format", "--log-format", Shape::kScalar, "text or json. Default text.",
       [](Config& c, const std::string& v) {
         if (v != "text" && v != "json") return bad(v, "text or json");
         c.log_format = v;
         return absl::OkStatus();
       }},
      {"log_level", "--log-level", Shape::kScalar, "trace, debug, info, warn or error. Default info.",
       [](Config& c, const std::string& v) {
         static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
         if (kLevels.count(v) == 0) return bad(v, "trace, debug, info, warn or error");
         c.log_level = v;
         return absl::OkStatus();
       }},
      {"shutdown_timeout", "--shutdown-timeout", Shape::kScalar,
       "Drain bound on SIGTERM/SIGINT, e.g. 10s. Default 10s.",
       [](Config& c, const std::string& v) {
         absl::Duration d;
         if (!absl::ParseDuration(v, &d) || d <= absl::ZeroDuration()) return bad(v, "a duration such as 10s");
         c.shutdown_timeout = d;
         return absl::OkStatus();
       }},
      {"limits.max_sessions", "--max-sessions", Shape::kScalar, "Client sessions per daemon. Default 1024.",
       [](Config& c, const std::string& v) { return parsePositive(v, c.limits.max_sessions); }},
      {"limits.max_holds_per_session", "--max-holds-per-session", Shape::kScalar,
       "Locks, waits and candidacies per session. Default 1024.",
       [](Config& c, const std::string& v) { return parsePositive(v, c.limits.max_holds_per_session); }},
      {"limits.max_observers", "--max-observers", Shape::kScalar, "Elections.Observe streams per daemon. Default 1024.",
       [](Config& c, const std::string& v) { return parsePositive(v, c.limits.max_observers); }},
      {"admin.allowed_peers", "--admin-allow", Shape::kList,
       "TCP peer IP address allowed to call Admin, repeatable. Unix socket peers always may.",
       [](Config& c, const std::string& v) {
         if (v.empty()) return bad(v, "an IP address");
         c.admin_allowed_peers.push_back(v);
         return absl::OkStatus();
       }},
      {"zookeeper.ensemble", "--zookeeper", Shape::kScalar,
       "ZooKeeper ensemble with chroot, e.g. zk1:2181,zk2:2181,zk3:2181/replicante. Absent: the embedded "
       "coordinator (this host only).",
       [](Config& c, const std::string& v) {
         std::string hosts = v.substr(0, v.find('/'));
         if (!v.empty() && (hosts.empty() || hosts.find(':') == std::string::npos)) {
           return bad(v, "host:port[,host:port...][/chroot]");
         }
         c.zookeeper = v;
         return absl::OkStatus();
       }},
      {"zookeeper.session_timeout", "--session-timeout", Shape::kScalar,
       "ZooKeeper session timeout, e.g. 10s (the ensemble may negotiate it). Default 10s.",
       [](Config& c, const std::string& v) {
         absl::Duration d;
         if (!absl::ParseDuration(v, &d) || d < absl::Seconds(1) || d > absl::Seconds(120)) {
           return bad(v, "a duration from 1s to 120s");
         }
         c.session_timeout = d;
         return absl::OkStatus();
       }},
      {"zookeeper.cleaner_interval", "--cleaner-interval", Shape::kScalar,
       "How often the cleaner (one daemon of the cluster) removes empty parents. Default 60s.",
       [](Config& c, const std::string& v) {
         absl::Duration d;
         if (!absl::ParseDuration(v, &d) || d < absl::Milliseconds(100)) return bad(v, "a duration of 100ms or more");
         c.cleaner_interval = d;
         return absl::OkStatus();
       }},
      {"zookeeper.cleaner_limit", "--cleaner-limit", Shape::kScalar,
       "Empty parents the cleaner removes per pass at most. Default 100.",
       [](Config& c, const std::string& v) { return parsePositive(v, c.cleaner_limit); }},
      {"zookeeper.auth", "--zookeeper-auth", Shape::kScalar,
       "Digest credentials USER:PASSWORD for ZooKeeper (prefer the file: flags show in ps).",
       [](Config& c, const std::string& v) {
         if (!v.empty() && (v.find(':') == std::string::npos || v.front() == ':'))
           return bad("(hidden)", "USER:PASSWORD");
         c.zookeeper_auth = v;
         return absl::OkStatus();
       }},
      {"zookeeper.acl", "--zookeeper-acl", Shape::kScalar,
       "open (anyone may change coordd's nodes) or creator (only the same credentials). Default open.",
       [](Config& c, const std::string& v) {
         if (v != "open" && v != "creator") return bad(v, "open or creator");
         c.zookeeper_acl = v;
         return absl::OkStatus();
       }},
      {"node_attributes", "--node-attribute", Shape::kMap,
       "KEY=VALUE published with this daemon in the member registry, repeatable.",
       [](Config& c, const std::string& v) {
         std::pair<std::string, std::string> kv = absl::StrSplit(v, absl::MaxSplits('=', 1));
         if (kv.first.empty() || v.find('=') == std::string::npos) return bad(v, "KEY=VALUE");
         c.node_attributes[kv.first] = kv.second;
         return absl::OkStatus();
       }},
  };
  return kOptions;
}

const Option* byKey(const std::string& key) {
  for (const auto& option : options()) {
    if (option.key == key) return &option;
  }
  return nullptr;
}

const Option* byFlag(const std::string& flag) {
  for (const auto& option : options()) {
    if (option.flag == flag) return &option;
  }
  return nullptr;
}

absl::Status fileError(const std::string& file, const std::string& key, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": key '", key, "': ", status.message()));
}

// Applies one YAML node to `config`, recursing into the sections.
absl::Status applyNode(Config& config, const std::string& file, const std::string& prefix, const YAML::Node& node) {
  if (!node.IsMap())
    return fileError(file, prefix.empty() ? "(top)" : prefix, absl::InvalidArgumentError("expected a map"));
  for (const auto& entry : node) {
    const std::string key =
        prefix.empty() ? entry.first.as<std::string>() : prefix + "." + entry.first.as<std::string>();
    const YAML::Node& value = entry.second;
    const Option* option = byKey(key);
    if (option == nullptr) {
      bool is_section = std::any_of(options().begin(), options().end(),
                                    [&](const Option& o) { return absl::StartsWith(o.key, key + "."); });
      if (!is_section) return fileError(file, key, absl::InvalidArgumentError("unknown key"));
      if (auto status = applyNode(config, file, key, value); !status.ok()) return status;
      continue;
    }
    absl::Status status;
    switch (option->shape) {
      case Shape::kScalar:
        status = value.IsScalar() ? option->apply(config, value.as<std::string>())
                                  : absl::InvalidArgumentError("expected a single value");
        break;
      case Shape::kList: {
        if (!value.IsSequence() && !value.IsScalar()) {
          status = absl::InvalidArgumentError("expected a list");
          break;
        }
        if (key == "listen") config.listen.clear();
        if (value.IsScalar()) {
          status = option->apply(config, value.as<std::string>());
          break;
        }
        for (const auto& item : value) {
          status = item.IsScalar() ? option->apply(config, item.as<std::string>())
                                   : absl::InvalidArgumentError("expected a list of values");
          if (!status.ok()) break;
        }
        break;
      }
      case Shape::kMap:
        if (!value.IsMap()) {
          status = absl::InvalidArgumentError("expected a map");
          break;
        }
        for (const auto& item : value) {
          status = option->apply(config, item.first.as<std::string>() + "=" + item.second.as<std::string>());
          if (!status.ok()) break;
        }
        break;
    }
    if (!status.ok()) return fileError(file, key, status);
  }
  return absl::OkStatus();
}

absl::Status loadFile(Config& config, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    return absl::InvalidArgumentError(absl::StrCat("--config: cannot read ", file));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not valid YAML: ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();  // an empty file keeps every default
  try {
    return applyNode(config, file, "", root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<CommandLine> parseCommandLine(const std::vector<std::string>& args) {
  // Splits "--flag=value" and "--flag value" into pairs, in order.
  std::vector<std::pair<std::string, std::string>> flags;
  CommandLine result;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      result.help = true;
      continue;
    }
    if (arg == "--version") {
      result.version = true;
      continue;
    }
    if (arg == "--check-config") {
      result.check_config = true;
      continue;
    }
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    if (name != "--config" && byFlag(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", name, "' (see --help)"));
    }
    if (eq != std::string::npos) {
      flags.emplace_back(name, arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      flags.emplace_back(name, args[++i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(name, ": needs a value"));
    }
  }
  if (result.help || result.version) return result;

  for (const auto& [name, value] : flags) {
    if (name != "--config") continue;
    if (auto status = loadFile(result.config, value); !status.ok()) return status;
  }
  std::set<std::string> seen;
  for (const auto& [name, value] : flags) {
    if (name == "--config") continue;
    const Option* option = byFlag(name);
    // The first use of a list flag replaces what the file said.
    if (option->shape == Shape::kList && seen.insert(name).second) {
      if (option->key == "listen") result.config.listen.clear();
      if (option->key == "admin.allowed_peers") result.config.admin_allowed_peers.clear();
    }
    if (auto status = option->apply(result.config, value); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message()));
    }
  }
  if (result.config.listen.empty()) return absl::InvalidArgumentError("listen: at least one address is needed");
  if (result.config.zookeeper_acl == "creator" && result.config.zookeeper_auth.empty()) {
    return absl::InvalidArgumentError("zookeeper.acl: creator needs credentials in zookeeper.auth");
  }
  return result;
}

std::string usage() {
  std::string text =
      "coordd: coordination sidecar serving component election and exclusive locks over local gRPC.\n"
      "\n"
      "Usage: coordd [--config FILE] [flags]\n"
      "\n"
      "Without a coordinator configured, coordd runs its embedded in-process coordinator, which\n"
      "coordinates only the processes of this host.\n"
      "\n"
      "Flags (each is also a key of the YAML file; a flag overrides the file):\n"
      "  --config FILE                YAML configuration (documented example: config/coordd.yaml)\n";
  for (const auto& option : options()) {
    std::string left = absl::StrCat("  ", option.flag, option.shape == Shape::kMap ? " KEY=VALUE" : " VALUE");
    absl::StrAppend(&text, absl::StrFormat("%-30s", left), " ", option.help, "  [", option.key, "]\n");
  }
  absl::StrAppend(&text,
                  "  --check-config               Validate the configuration, print it, and exit\n"
                  "  --version                    Print the version and exit\n"
                  "  -h, --help                   This text\n"
                  "\n"
                  "Signals: SIGTERM/SIGINT end every client session (TERMINATED), release everything in the\n"
                  "coordinator and exit 0 within shutdown_timeout.\n"
                  "Example: coordd --listen unix:/run/coordd.sock --log-format json\n");
  return text;
}

std::string describe(const Config& config) {
  std::string attributes;
  for (const auto& [k, v] : config.node_attributes) absl::StrAppend(&attributes, "\n  ", k, ": ", v);
  return absl::StrFormat(
      "listen: [%s]\nsocket_mode: \"%04o\"\nlog_format: %s\nlog_level: %s\nshutdown_timeout: %s\n"
      "limits:\n  max_sessions: %d\n  max_holds_per_session: %d\n  max_observers: %d\nadmin:\n  allowed_peers: [%s]\n"
      "node_attributes:%s\nzookeeper:\n  ensemble: \"%s\"\n  session_timeout: %s\n  cleaner_interval: %s\n"
      "  cleaner_limit: %d\n  auth: %s\n  acl: %s\n",
      absl::StrJoin(config.listen, ", "), config.socket_mode, config.log_format, config.log_level,
      absl::FormatDuration(config.shutdown_timeout), config.limits.max_sessions, config.limits.max_holds_per_session,
      config.limits.max_observers, absl::StrJoin(config.admin_allowed_peers, ", "),
      attributes.empty() ? " {}" : attributes, config.zookeeper, absl::FormatDuration(config.session_timeout),
      absl::FormatDuration(config.cleaner_interval), config.cleaner_limit,
      config.zookeeper_auth.empty() ? "\"\"" : "(set)", config.zookeeper_acl);
}

}  // namespace coordd::config
