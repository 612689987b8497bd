#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

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

// A user or group by name or number.
template <typename Id>
absl::Status parseId(const std::string& value, bool user, Id& out) {
  if (absl::SimpleAtoi(value, &out)) return absl::OkStatus();
  if (user) {
    if (const passwd* pw = ::getpwnam(value.c_str())) {
      out = pw->pw_uid;
      return absl::OkStatus();
    }
    return bad(value, "a user name or uid known to this host");
  }
  if (const group* gr = ::getgrnam(value.c_str())) {
    out = gr->gr_gid;
    return absl::OkStatus();
  }
  return bad(value, "a group name or gid known to this host");
}

// Empty means none.
absl::Status readableFile(const std::string& value) {
  if (!value.empty() && ::access(value.c_str(), R_OK) != 0) return bad(value, "a readable file");
  return absl::OkStatus();
}

// A socket owner or group; empty means coordd's own.
template <typename Id>
absl::Status optionalId(const std::string& value, bool user, std::optional<Id>& out) {
  out.reset();
  if (value.empty()) return absl::OkStatus();
  Id id = 0;
  if (auto status = parseId(value, user, id); !status.ok()) return status;
  out = id;
  return absl::OkStatus();
}

// Resets a list option before a new source gives its values.
void clearList(Config& c, const std::string& key) {
  if (key == "listen") c.listen.clear();
  if (key == "admin.allowed_peers") c.admin_allowed_peers.clear();
  if (key == "access.api_uids") c.api_uids.clear();
  if (key == "access.api_gids") c.api_gids.clear();
  if (key == "access.admin_uids") c.admin_uids.clear();
  if (key == "access.admin_gids") c.admin_gids.clear();
}

absl::Status parsePositive(const std::string& value, int64_t& out) {
  if (!absl::SimpleAtoi(value, &out) || out < 1) return bad(value, "a positive integer");
  return absl::OkStatus();
}

// `expected` names the accepted forms in the error.
absl::Status validateHostPort(const std::string& value, const char* expected = "host:port") {
  size_t colon = value.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return bad(value, expected);
  }
  return absl::OkStatus();
}

// host:port into `field`; empty turns the listener off.
absl::Status optionalHostPort(const std::string& value, std::string& field) {
  if (!value.empty()) {
    if (auto status = validateHostPort(value); !status.ok()) return status;
  }
  field = value;
  return absl::OkStatus();
}

absl::Status validateListen(const std::string& value) {
  if (absl::StartsWith(value, "unix:")) {
    if (value.size() <= 5 || value[5] != '/') return bad(value, "unix:/absolute/path");
    return absl::OkStatus();
  }
  return validateHostPort(value, "unix:/path or host:port");
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
      {"socket_owner", "--socket-owner", Shape::kScalar, "Owner of Unix sockets: user name or uid. Default: coordd's.",
       [](Config& c, const std::string& v) { return optionalId(v, true, c.socket_owner); }},
      {"socket_group", "--socket-group", Shape::kScalar, "Group of Unix sockets: group name or gid. Default: coordd's.",
       [](Config& c, const std::string& v) { return optionalId(v, false, c.socket_group); }},
      {"access.api_uids", "--allow-uid", Shape::kList,
       "User (name or uid) allowed to call the API over the Unix socket, repeatable. None: anyone who can open it.",
       [](Config& c, const std::string& v) { return parseId(v, true, c.api_uids.emplace_back()); }},
      {"access.api_gids", "--allow-gid", Shape::kList,
       "Group (name or gid) whose members may call the API over the Unix socket, repeatable.",
       [](Config& c, const std::string& v) { return parseId(v, false, c.api_gids.emplace_back()); }},
      {"access.admin_uids", "--admin-uid", Shape::kList,
       "User allowed to call Admin over the Unix socket, repeatable. None: as for the API.",
       [](Config& c, const std::string& v) { return parseId(v, true, c.admin_uids.emplace_back()); }},
      {"access.admin_gids", "--admin-gid", Shape::kList,
       "Group whose members may call Admin over the Unix socket, repeatable.",
       [](Config& c, const std::string& v) { return parseId(v, false, c.admin_gids.emplace_back()); }},
      {"tls.cert", "--tls-cert", Shape::kScalar, "PEM certificate (chain) served on TCP listeners; required with them.",
       [](Config& c, const std::string& v) {
         c.tls_cert = v;
         return readableFile(v);
       }},
      {"tls.key", "--tls-key", Shape::kScalar, "PEM private key of tls.cert.",
       [](Config& c, const std::string& v) {
         c.tls_key = v;
         return readableFile(v);
       }},
      {"tls.client_ca", "--tls-client-ca", Shape::kScalar,
       "PEM CA bundle: TCP clients must present a certificate it signed (mTLS). Default: none asked.",
       [](Config& c, const std::string& v) {
         c.tls_client_ca = v;
         return readableFile(v);
       }},
      {"http.listen", "--http", Shape::kScalar,
       "host:port serving Prometheus /metrics, /healthz (alive) and /readyz (coordinator connected) over HTTP. "
       "Default: off.",
       [](Config& c, const std::string& v) { return optionalHostPort(v, c.http_listen); }},
      {"health.listen", "--health-listen", Shape::kScalar,
       "host:port serving only grpc.health.v1.Health, plaintext, for Kubernetes gRPC probes (SERVING while the "
       "coordinator is connected). Default: off.",
       [](Config& c, const std::string& v) { return optionalHostPort(v, c.health_listen); }},
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
        clearList(config, key);
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

// Applies the YAML `text`, read from `source` (for messages), to `config`.
absl::Status loadText(Config& config, const std::string& source, const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();  // an empty file keeps every default
  try {
    return applyNode(config, source, "", root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
}

absl::Status loadFile(Config& config, const std::string& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--config: cannot read ", file));
  return loadText(config, file, text.str());
}

}  // namespace

absl::StatusOr<Config> parseConfigText(const std::string& text) {
  Config config;
  if (auto status = loadText(config, "(text)", text); !status.ok()) return status;
  return config;
}

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
    if (option->shape == Shape::kList && seen.insert(name).second) clearList(result.config, option->key);
    if (auto status = option->apply(result.config, value); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", status.message()));
    }
  }
  if (result.config.listen.empty()) return absl::InvalidArgumentError("listen: at least one address is needed");
  const Config& c = result.config;
  const bool tcp = std::any_of(c.listen.begin(), c.listen.end(),
                               [](const std::string& address) { return !absl::StartsWith(address, "unix:"); });
  if (tcp && (c.tls_cert.empty() || c.tls_key.empty())) {
    return absl::InvalidArgumentError(
        "listen: a TCP address is served only over TLS: set tls.cert and tls.key (--tls-cert, --tls-key)");
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return absl::InvalidArgumentError("tls.cert and tls.key: set both or neither");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return absl::InvalidArgumentError("tls.client_ca: needs tls.cert and tls.key");
  }
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
      "listen: [%s]\nsocket_mode: \"%04o\"\nsocket_owner: %s\nsocket_group: %s\n"
      "access:\n  api_uids: [%s]\n  api_gids: [%s]\n  admin_uids: [%s]\n  admin_gids: [%s]\n"
      "tls:\n  cert: \"%s\"\n  key: \"%s\"\n  client_ca: \"%s\"\n"
      "http:\n  listen: \"%s\"\nhealth:\n  listen: \"%s\"\n"
      "log_format: %s\nlog_level: %s\nshutdown_timeout: %s\n"
      "limits:\n  max_sessions: %d\n  max_holds_per_session: %d\n  max_observers: %d\nadmin:\n  allowed_peers: [%s]\n"
      "node_attributes:%s\nzookeeper:\n  ensemble: \"%s\"\n  session_timeout: %s\n  cleaner_interval: %s\n"
      "  cleaner_limit: %d\n  auth: %s\n  acl: %s\n",
      absl::StrJoin(config.listen, ", "), config.socket_mode,
      config.socket_owner ? absl::StrCat(*config.socket_owner) : "\"\"",
      config.socket_group ? absl::StrCat(*config.socket_group) : "\"\"", absl::StrJoin(config.api_uids, ", "),
      absl::StrJoin(config.api_gids, ", "), absl::StrJoin(config.admin_uids, ", "),
      absl::StrJoin(config.admin_gids, ", "), config.tls_cert, config.tls_key, config.tls_client_ca, config.http_listen,
      config.health_listen, config.log_format, config.log_level, absl::FormatDuration(config.shutdown_timeout),
      config.limits.max_sessions, config.limits.max_holds_per_session, config.limits.max_observers,
      absl::StrJoin(config.admin_allowed_peers, ", "), attributes.empty() ? " {}" : attributes, config.zookeeper,
      absl::FormatDuration(config.session_timeout), absl::FormatDuration(config.cleaner_interval), config.cleaner_limit,
      config.zookeeper_auth.empty() ? "\"\"" : "(set)", config.zookeeper_acl);
}

}  // namespace coordd::config
