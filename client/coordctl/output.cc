#include "output.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace coordd::ctl {
namespace {

constexpr size_t kMaxValueText = 200;

}  // namespace

void printJson(const nlohmann::json& value) {
  std::cout << value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void printLine(absl::string_view line) { std::cout << line << std::endl; }

void report(bool json, const nlohmann::json& fields, absl::string_view text) {
  if (json) {
    std::cerr << fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else {
    std::cerr << "coordctl: " << text << std::endl;
  }
}

nlohmann::json ownerJson(const Owner& owner) {
  return nlohmann::json{{"node_id", owner.node_id},
                        {"session_id", owner.session_id},
                        {"owner", owner.owner},
                        {"attributes", owner.attributes}};
}

std::string ownerText(const Owner& owner) {
  if (owner.owner.empty() && owner.session_id.empty() && owner.node_id.empty()) {
    return "a holder not known (the lock changed hands while it was read)";
  }
  return absl::StrCat(owner.owner.empty() ? "?" : owner.owner, " (session ", owner.session_id, ", node ", owner.node_id,
                      ")");
}

std::string attributesText(const std::map<std::string, std::string>& attributes) {
  return absl::StrJoin(attributes, ",", absl::PairFormatter("="));
}

std::string valueText(absl::string_view value) {
  const bool cut = value.size() > kMaxValueText;
  std::string text = absl::CHexEscape(absl::string_view(value.data(), std::min(value.size(), kMaxValueText)));
  return cut ? absl::StrCat(text, "...") : text;
}

std::string timeText(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::string durationText(int64_t ms) { return absl::FormatDuration(absl::Milliseconds(ms)); }

nlohmann::json leaderJson(absl::string_view election, const std::optional<LeaderInfo>& leader) {
  nlohmann::json out{{"election", election}, {"has_leader", leader.has_value()}};
  if (leader) {
    out["owner"] = ownerJson(leader->owner);
    out["value"] = leader->value;
    out["term"] = leader->term;
  }
  return out;
}

std::string leaderText(absl::string_view election, const std::optional<LeaderInfo>& leader) {
  if (!leader) return absl::StrCat(election, ": no primary");
  return absl::StrCat(election, ": primary ", ownerText(leader->owner), ", term ", leader->term, ", value \"",
                      valueText(leader->value), "\"");
}

Table::Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }

void Table::add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

void Table::print() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const bool last = i + 1 == row.size();
      absl::StrAppend(&line, row[i], last ? "" : std::string(widths[i] - row[i].size() + 2, ' '));
    }
    std::cout << line << "\n";
  }
  std::cout << std::flush;
}

}  // namespace coordd::ctl
