#pragma once
// Files written so that a crash leaves either the old or the new content, and content hashes.
//
// Thread safety: pure functions; concurrent writers of one path must be serialised by the caller.

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::connectors::detail {

// Writes to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs the
// folder. Errors: kIoError naming the path and errno's text.
Status write_file_atomically(const std::filesystem::path& path, std::string_view content);

// Errors: kNotFound, kIoError; kPayloadTooLarge when larger than `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t max_bytes);

// Lower-case hex SHA-256.
std::string sha256_hex(std::string_view bytes);

}  // namespace sluice::connectors::detail
