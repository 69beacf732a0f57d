#pragma once
// Who an offline command acts for: whoever runs it on the server's files, as "local:<USER>"
// (the uid when USER is unset). Offline commands audit their changes under this name.
//
// Thread safety: reads the environment only.

#include <string>

namespace sluice::app {

std::string local_user();

}  // namespace sluice::app
