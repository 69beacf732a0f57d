#pragma once
// `sluice search --index NAME --query TEXT [--k N] [--mode hybrid|ann|lexical] [--filter JSON]
// [--principal P] [--group G]... [--json]`: queries an index of the data directory from the
// command line. It opens the data directory itself, so it runs when no server holds it; the
// reader identity is given on the command line by the operator who owns the data directory.

#include "app/cli.h"

namespace sluice::app {

void add_search_command(Cli& cli);

}  // namespace sluice::app
