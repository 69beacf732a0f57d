#pragma once
// Governance commands.
//
// Offline, against a data directory (no server needed):
//   sluice token create --data-dir D --principal NAME [--admin] [--comment C] [--lifetime-seconds N]
//     Break-glass: works while `sluice serve` runs on D. It does not take the data directory's
//     LOCK (the server holds it); it writes through SQLite, whose WAL mode and busy timeout
//     serialise it with the server's writers, and the server sees the new principal or admin
//     flag on its next authenticated request. Prints {"token": ...} as its last line.
//   sluice audit verify --data-dir D        exit 0 when the chain and checkpoints verify, 1 if not,
//     2 when they cannot be checked. Only reads: without an audit signing key it creates none;
//     a log with records, checkpoints or archives then exits 2, an empty one 0 with a note.
//   sluice audit export --data-dir D [--after-seq N] [--limit N]      JSON lines on stdout
//   sluice audit archive --data-dir D --up-to-seq N --file F          retention
//
// Online, against a running server's REST API (--server URL or SLUICE_SERVER, --token T or
// SLUICE_TOKEN):
//   sluice catalog create|get|delete|list TYPE NAME, grant|revoke TYPE NAME PRINCIPAL PRIV...,
//   permissions|effective TYPE NAME [--principal P]

#include "app/cli.h"

namespace sluice::app {

void add_governance_commands(Cli& cli);

}  // namespace sluice::app
