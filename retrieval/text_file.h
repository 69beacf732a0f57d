#pragma once
// Reads a whole data file into memory, gunzipping it when its name ends in ".gz" (data sets such
// as BEIR's ship corpus.jsonl.gz).
//
// Thread safety: a pure function.

#include <filesystem>
#include <string>

#include "common/result.h"

namespace sluice::retrieval {

// kNotFound when the file does not exist, kIoError when it cannot be read, kDataLoss when a
// ".gz" file is not valid gzip or is truncated.
Result<std::string> read_text_file(const std::filesystem::path& path);

}  // namespace sluice::retrieval
