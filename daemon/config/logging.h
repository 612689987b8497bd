#pragma once

#include <string>

namespace coordd::config {

// Sets spdlog's default logger: text, or one JSON object per line, at
// `level`. Logs go to stderr.
void setupLogging(const std::string& format, const std::string& level);

}  // namespace coordd::config
