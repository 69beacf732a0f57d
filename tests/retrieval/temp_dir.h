#pragma once
// A fresh folder under the system temp directory, removed with the object.

#include <filesystem>
#include <random>
#include <string>

namespace sluice::retrieval::testing {

// "prefix" + std::to_string(n), written so that GCC 12's -Wrestrict false positive on
// `literal + std::string` does not fire.
inline std::string numbered(const char* prefix, long long n) {
    std::string out(prefix);
    out.append(std::to_string(n));
    return out;
}

class TempDir {
public:
    explicit TempDir(const std::string& name) {
        std::random_device random;
        path_ = std::filesystem::temp_directory_path() /
                ("sluice-rt-" + name + "-" + std::to_string(random()));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace sluice::retrieval::testing
