#pragma once
// Whole-file reads for tokenizer files, with errors as Status (std::filesystem throws; this
// catches). Thread safety: a pure function.

#include <filesystem>
#include <string>

#include "common/result.h"

namespace sluice::inference::detail {

// The bytes of `path`. kNotFound when it does not exist, kIoError when it cannot be read,
// kPayloadTooLarge above `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path,
                              std::uintmax_t max_bytes = std::uintmax_t{1} << 30);

}  // namespace sluice::inference::detail
