#pragma once
// Writing a file so that readers and crashes see either the old or the new contents, never a
// mix: write a temporary file beside it, fsync it, rename it over the target, fsync the folder.
//
// Thread safety: safe to call concurrently for different targets.

#include <filesystem>
#include <string_view>

#include "common/status.h"

namespace sluice::app {

// Replaces `target` with `contents`, created with `mode` permissions. kIoError names the step
// that failed; the target is untouched on failure.
Status write_file_atomically(const std::filesystem::path& target, std::string_view contents,
                             unsigned mode = 0600);

}  // namespace sluice::app
