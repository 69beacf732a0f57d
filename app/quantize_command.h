#pragma once
// `sluice model quantize --model DIR --out DIR [--weights fp8] [--shard-gb G] [--json]`: writes
// the checkpoint quantised (inference/quantized_checkpoint.h) into a new folder, which then loads
// on the cuda backend without quantising again (`--weights stored` keeps it fp8) and on the cpu
// backend widened to bf16. Prints what was written; with --json one JSON object last.

#include "app/cli.h"

namespace sluice::app {

// Adds `quantize` under `model`.
void add_model_quantize_command(CLI::App* model, Cli& cli);

}  // namespace sluice::app
