#pragma once
// Connection commands, offline against a data directory:
//   sluice connection forget-secrets --data-dir D
//     For a data directory whose secret key (secrets.key) is lost for good: the server refuses
//     to start while catalog.db holds connection secrets sealed with another key than the one it
//     has. This takes the data directory's lock (stop the server first), makes a new key where
//     none is left, removes the secrets sealed with another key in one transaction, and audits
//     each as `connection.secret.forget`. The connections stay, without their secrets, until an
//     admin sets each again (PUT /api/connections/NAME). Prints one JSON object.

#include "app/cli.h"

namespace sluice::app {

void add_connection_commands(Cli& cli);

}  // namespace sluice::app
