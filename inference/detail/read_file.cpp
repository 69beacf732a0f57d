#include "inference/detail/read_file.h"

#include <fstream>
#include <system_error>

namespace sluice::inference::detail {

Result<std::string> read_file(const std::filesystem::path& path, std::uintmax_t max_bytes) {
    std::error_code ec;
    std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) {
            return not_found("file '" + path.string() + "' does not exist");
        }
        return io_error("file '" + path.string() + "': " + ec.message());
    }
    if (size > max_bytes) {
        return Status(StatusCode::kPayloadTooLarge, "file '" + path.string() + "' has " +
                                                         std::to_string(size) +
                                                         " bytes, expected at most " +
                                                         std::to_string(max_bytes));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return io_error("file '" + path.string() + "' cannot be opened for reading");
    }
    std::string bytes(static_cast<std::size_t>(size), '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(size));
    if (static_cast<std::uintmax_t>(in.gcount()) != size) {
        return io_error("file '" + path.string() + "': read " + std::to_string(in.gcount()) +
                        " of " + std::to_string(size) + " bytes");
    }
    return bytes;
}

}  // namespace sluice::inference::detail
