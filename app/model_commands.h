#pragma once
// Model commands:
//   sluice model inspect DIR [--json]      config, parameter counts, tensors, bytes per dtype,
//                                          KV-cache bytes per token
//   sluice model forward --model DIR --ids 1,2,3 [--weights ...]
//                                          one JSON object {"logits": [[...], ...]}, a row of
//                                          float32 logits per input position
//   sluice model init-tiny --out DIR [--preset tiny|small] [--seed N] [--dtype f32|bf16]
//                          [--tokenizer PATH]
//                                          writes a random DBRX checkpoint with tokenizer files
//   sluice model quantize --model DIR --out DIR  fp8 checkpoint (quantize_command.h)
// `sluice generate` is in generate_command.h.
// Errors print `sluice <command>: <status>` on stderr and exit 1.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app/cli.h"
#include "common/result.h"
#include "inference/backend.h"

namespace sluice::app {

// Parses "1,2,3" (spaces allowed) into token ids; kInvalidArgument naming the bad item.
Result<std::vector<int32_t>> parse_id_list(const std::string& text);

void add_model_commands(Cli& cli);

// Shared by the commands that run a model.

// Prints "sluice <command>: <status>" on stderr; returns the exit code 1.
int report_failure(const std::string& command, const Status& status);

// "stored", "f32", "bf16", "int8" and their formats.
const std::map<std::string, inference::WeightFormat>& weight_formats();
void add_weights_option(CLI::App* command, std::string* weights);

// "auto", "cpu" or "cuda" (backend_factory.h).
void add_backend_option(CLI::App* command, std::string* backend);

// Opens the checkpoint in `dir` on `backend` ("auto", "cpu" or "cuda"; cuda falls back to the CPU
// without a GPU) with a KV cache of `n_positions` positions (capped at the model's max_seq_len)
// in blocks of `block_size`.
Result<std::unique_ptr<inference::Backend>> open_model(const std::string& dir,
                                                       const std::string& weights,
                                                       int64_t n_positions, int32_t block_size,
                                                       const std::string& backend = "cpu");

}  // namespace sluice::app
