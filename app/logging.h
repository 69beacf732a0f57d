#pragma once
// Binds common/log.h to spdlog: one line per record on stderr, either a JSON object
// ({"ts","level","component","msg", fields...}) or text for people. Timestamps are UTC.
//
// Thread safety: install_logging is called once at start-up; the sink is thread-safe.

#include "app/config.h"
#include "common/status.h"

namespace sluice::app {

Status install_logging(const LogConfig& config);

}  // namespace sluice::app
