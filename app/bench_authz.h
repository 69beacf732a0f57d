#pragma once
// `sluice bench authz [--json]`: authorisation cost at catalog scale. Builds a catalog in a
// temporary data directory (1,000 principals, groups nested 5 deep, 10,000 grants), then
// measures (1) in-process Authorizer::check latency p50/p99, (2) Authorizer::require with the
// durable audit log, and (3) authenticated, authorised HTTP requests per second with auditing
// and with a sink that drops audit records, to show what auditing costs. The HTTP modes run in
// interleaved rounds (`--rounds`, order rotating); each audited mode's cost is taken within each
// round and reported as a median with its range. `--modes durable|queued` picks the audited modes.

#include "app/cli.h"

namespace sluice::app {

void add_authz_bench(Cli& cli);

}  // namespace sluice::app
