#pragma once

// Everything coordctl prints: JSON lines, aligned tables, owner records.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "coordd/types.h"

namespace coordd::ctl {

// One JSON document on one line of stdout, flushed (streams are read live).
// Invalid UTF-8 in values is replaced, never fatal.
void printJson(const nlohmann::json& value);

// A line of plain text on stdout, flushed.
void printLine(absl::string_view line);

// What a supervising command (lock, elect) tells its user, on stderr since
// stdout belongs to CMD: "coordctl: <text>", or with --json `fields` as one
// JSON line.
void report(bool json, const nlohmann::json& fields, absl::string_view text);

nlohmann::json ownerJson(const Owner& owner);
// "label (session S, node N)"
std::string ownerText(const Owner& owner);
// "k=v,k2=v2", sorted by key.
std::string attributesText(const std::map<std::string, std::string>& attributes);
// A value for a terminal: control bytes escaped, long values cut.
std::string valueText(absl::string_view value);
// RFC 3339 UTC, millisecond precision.
std::string timeText(int64_t unix_ms);
// e.g. "1h2m3.5s"
std::string durationText(int64_t ms);

// The primary of an election, as `leader` and `observe` print it.
nlohmann::json leaderJson(absl::string_view election, const std::optional<LeaderInfo>& leader);
std::string leaderText(absl::string_view election, const std::optional<LeaderInfo>& leader);

// Columns aligned to their widest cell, under a header row.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void add(std::vector<std::string> row);
  void print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace coordd::ctl
