#pragma once
// `sluice serve`: opens the data directory, starts the HTTP server and serves until SIGINT or
// SIGTERM; then it stops accepting, reports draining on /readyz, lets in-flight requests finish
// within /server/shutdown_deadline_s, flushes the logs and exits 0 (1 if the deadline passed
// with requests still running; a second signal exits at once with 1).

#include "app/cli.h"
#include "app/config.h"

namespace sluice::app {

// Runs the server with `config` until a shutdown signal. Returns the exit code.
int run_server(const Config& config);

void add_serve_command(Cli& cli);

}  // namespace sluice::app
