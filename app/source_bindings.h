#pragma once
// Which index each source feeds: <data_dir>/sources/bindings.json, {"version": 1, "bindings":
// {"<source>": "<index>"}}, replaced atomically on every change. `sluice source add --index` and
// `sluice source bind` write it; `sluice serve` (continuous sync) and `sluice source sync`
// (triggered) read it. A bound index that does not exist yet is created with default settings
// by whoever syncs first. A running server reads the bindings at start.
//
// Thread safety: functions are safe to call from one process at a time per data directory
// (read-modify-write without a lock between processes; the CLI is that one writer).

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "common/result.h"

namespace sluice::app {

// source name -> index name. Errors: kDataLoss when the file does not parse.
Result<std::map<std::string, std::string>> read_source_bindings(
    const std::filesystem::path& data_dir);
// Errors: kInvalidArgument for a bad index name; kIoError from the write.
Status bind_source(const std::filesystem::path& data_dir, const std::string& source,
                   const std::string& index);
// Removing a binding that does not exist is not an error.
Status unbind_source(const std::filesystem::path& data_dir, const std::string& source);
// The index a source is bound to, if any.
Result<std::optional<std::string>> bound_index(const std::filesystem::path& data_dir,
                                               const std::string& source);

}  // namespace sluice::app
