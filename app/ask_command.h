#pragma once
// `sluice ask --index NAME [--principal P] [--group G]... [--rewrite] [--k N]
// [--max-tokens N] [--json] QUESTION`: document QA from the command line. Like `sluice search`
// it opens the data directory itself (so it runs when no server holds it), with the reader
// identity given by the operator who owns the data directory; it loads the configured model,
// streams the answer, then lists the numbered sources and the trace id (the trace is stored in
// catalog.db, as the server stores its own).

#include "app/cli.h"

namespace sluice::app {

void add_ask_command(Cli& cli);

}  // namespace sluice::app
