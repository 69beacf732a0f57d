#pragma once
// A fresh temporary directory per test, removed afterwards.

#include <filesystem>
#include <random>
#include <string>

namespace sluice::testing {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& name) {
        std::random_device random;
        path = std::filesystem::temp_directory_path() /
               ("sluice-gov-" + name + "-" + std::to_string(random()));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
        std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

}  // namespace sluice::testing
