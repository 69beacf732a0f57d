#pragma once
// `sluice version`: version, git revision, build type, compiled-in CUDA and NCCL, visible GPUs.

#include "app/cli.h"

namespace sluice::app {

void add_version_command(Cli& cli);

}  // namespace sluice::app
