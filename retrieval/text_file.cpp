#include "retrieval/text_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace sluice::retrieval {
namespace {

struct GzCloser {
    void operator()(gzFile_s* file) const { gzclose(file); }
};
using GzFilePtr = std::unique_ptr<gzFile_s, GzCloser>;

}  // namespace

Result<std::string> read_text_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return not_found("data file '" + path.string() + "' does not exist");
    }
    if (path.extension() != ".gz") {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            return io_error("cannot open '" + path.string() + "': " + std::strerror(errno));
        }
        std::ostringstream buffer;
        buffer << in.rdbuf();
        if (in.bad()) {
            return io_error("cannot read '" + path.string() + "'");
        }
        return buffer.str();
    }
    GzFilePtr file(gzopen(path.c_str(), "rb"));
    if (!file) {
        return io_error("cannot open '" + path.string() + "': " + std::strerror(errno));
    }
    std::string out;
    char chunk[1 << 16];
    while (true) {
        int n = gzread(file.get(), chunk, sizeof(chunk));
        if (n < 0) {
            int code = 0;
            const char* message = gzerror(file.get(), &code);
            return data_loss("gzip file " + path.string() + " is not valid: " + std::string(message));
        }
        if (n == 0) {
            break;
        }
        out.append(chunk, static_cast<std::size_t>(n));
    }
    int code = 0;
    const char* message = gzerror(file.get(), &code);
    if (code != Z_OK && code != Z_STREAM_END) {
        return data_loss("gzip file " + path.string() + " is truncated or corrupt: " + std::string(message));
    }
    return out;
}

}  // namespace sluice::retrieval
