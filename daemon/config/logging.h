#pragma once

#include <string>

namespace coordd::config {

// Sets spdlog's default logger: text, or one JSON object per line, at
// `level`. Logs go to stderr, written by a thread of their own.
void setupLogging(const std::string& format, const std::string& level);
// Writes the lines still queued, says how many were dropped, if any, and
// stops the writer. Call it before the process exits.
void stopLogging();

}  // namespace coordd::config
