#include "app/data_dir.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <random>

#include "app/atomic_file.h"

using sluice::StatusCode;
using namespace sluice::app;

namespace {

std::filesystem::path temp_path(const std::string& name) {
    std::random_device random;
    auto path = std::filesystem::temp_directory_path() /
                ("sluice-dd-" + name + "-" + std::to_string(random()));
    std::filesystem::remove_all(path);
    return path;
}

}  // namespace

TEST_CASE("open creates a private, versioned, locked directory") {
    auto path = temp_path("create");
    {
        auto dir = DataDir::open(path, DataDirMode::kCreate);
        REQUIRE_MESSAGE(dir.ok(), dir.status().to_string());
        CHECK((*dir)->format_version() == kDataFormatVersion);
        struct stat info {};
        REQUIRE(::stat(path.c_str(), &info) == 0);
        CHECK((info.st_mode & 0777) == 0700);
        CHECK(std::filesystem::exists(path / "FORMAT"));
        CHECK(std::filesystem::exists(path / "LOCK"));

        auto second = DataDir::open(path, DataDirMode::kCreate);
        REQUIRE_FALSE(second.ok());
        CHECK(second.status().code() == StatusCode::kFailedPrecondition);
        CHECK(second.status().message().find("in use by another sluice process (pid " +
                                             std::to_string(::getpid()) + ")") !=
              std::string::npos);
    }
    // The lock goes with the DataDir.
    auto again = DataDir::open(path, DataDirMode::kCreate);
    CHECK(again.ok());
    std::filesystem::remove_all(path);
}

TEST_CASE("an existing directory open to others is restricted to its owner") {
    auto path = temp_path("perms");
    std::filesystem::create_directories(path);
    ::chmod(path.c_str(), 0755);
    auto dir = DataDir::open(path, DataDirMode::kCreate);
    REQUIRE(dir.ok());
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0700);
    std::filesystem::remove_all(path);
}

TEST_CASE("a newer format is refused and a corrupt one is data loss") {
    auto path = temp_path("format");
    std::filesystem::create_directories(path);

    std::ofstream(path / "FORMAT") << R"({"format_version": 99})";
    auto newer = DataDir::open(path, DataDirMode::kCreate);
    REQUIRE_FALSE(newer.ok());
    CHECK(newer.status().code() == StatusCode::kFailedPrecondition);
    CHECK(newer.status().message().find("format version 99") != std::string::npos);

    std::ofstream(path / "FORMAT", std::ios::trunc) << "garbage";
    auto corrupt = DataDir::open(path, DataDirMode::kCreate);
    REQUIRE_FALSE(corrupt.ok());
    CHECK(corrupt.status().code() == StatusCode::kDataLoss);
    std::filesystem::remove_all(path);
}

TEST_CASE("a path that is a file is refused") {
    auto path = temp_path("file");
    std::ofstream(path) << "not a directory";
    auto dir = DataDir::open(path, DataDirMode::kCreate);
    REQUIRE_FALSE(dir.ok());
    CHECK(dir.status().message().find("is not a directory") != std::string::npos);
    std::filesystem::remove(path);
}

TEST_CASE("a command that only uses a data directory refuses a missing one and creates nothing") {
    auto path = temp_path("missing") / "typo";
    auto prepared = prepare_data_dir(path, DataDirMode::kMustExist);
    REQUIRE_FALSE(prepared.ok());
    CHECK(prepared.code() == StatusCode::kNotFound);
    const std::string named = path.string();
    CHECK(prepared.message().find("data directory '" + named + "' does not exist") !=
          std::string::npos);
    auto opened = DataDir::open(path, DataDirMode::kMustExist);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.status().code() == StatusCode::kNotFound);
    CHECK_FALSE(std::filesystem::exists(path));
    CHECK_FALSE(std::filesystem::exists(path.parent_path()));

    auto file = temp_path("must-exist-file");
    std::ofstream(file) << "not a directory";
    CHECK(prepare_data_dir(file, DataDirMode::kMustExist).code() ==
          StatusCode::kFailedPrecondition);
    std::filesystem::remove(file);

    // An existing one is used as it is; kCreate makes a missing one, owner-only.
    auto made = temp_path("create-mode");
    REQUIRE(prepare_data_dir(made, DataDirMode::kCreate).ok());
    struct stat info {};
    REQUIRE(::stat(made.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0700);
    // The catalog marks a folder as a data directory (every initialising command makes it).
    std::ofstream(made / "catalog.db").flush();
    CHECK(prepare_data_dir(made, DataDirMode::kMustExist).ok());
    auto dir = DataDir::open(made, DataDirMode::kMustExist);
    CHECK(dir.ok());
    dir = DataDir::open(made, DataDirMode::kMustExist);  // the lock is held
    CHECK(dir.status().code() == StatusCode::kFailedPrecondition);
    std::filesystem::remove_all(made);
}

TEST_CASE("a command that only uses a data directory refuses a folder that holds none") {
    auto path = temp_path("empty");
    std::filesystem::create_directories(path);
    ::chmod(path.c_str(), 0755);
    auto prepared = prepare_data_dir(path, DataDirMode::kMustExist);
    CHECK(prepared.code() == StatusCode::kNotFound);
    CHECK(prepared.message().find("folder '" + path.string() +
                                  "' holds no sluice data directory (no catalog.db)") !=
          std::string::npos);
    auto opened = DataDir::open(path, DataDirMode::kMustExist);
    CHECK(opened.status().code() == StatusCode::kNotFound);
    // Neither the lock, the format file nor owner-only permissions: the folder is as it was.
    CHECK(std::filesystem::is_empty(path));
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0755);
    std::filesystem::remove_all(path);
}

TEST_CASE("atomic writes replace the whole file or nothing") {
    auto path = temp_path("atomic");
    std::filesystem::create_directories(path);
    auto target = path / "file.json";
    REQUIRE(write_file_atomically(target, "first").ok());
    REQUIRE(write_file_atomically(target, "second version").ok());
    std::ifstream in(target);
    std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(contents == "second version");
    // No temporary files are left behind.
    CHECK(std::distance(std::filesystem::directory_iterator(path),
                        std::filesystem::directory_iterator()) == 1);

    auto failed = write_file_atomically(path / "missing-folder" / "x", "data");
    CHECK(failed.code() == StatusCode::kIoError);
    CHECK(failed.message().find("missing-folder") != std::string::npos);
    std::filesystem::remove_all(path);
}
