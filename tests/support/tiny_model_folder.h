#pragma once
// For app tests that run the embedded tiny model: a fresh temporary folder with the `tiny` preset
// and the shipped tokenizer written to `<path>/tiny`, removed with everything in it on
// destruction. The rest of the folder is the test's own.

#include <filesystem>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "app/tokenize_command.h"
#include "inference/hf_tokenizer.h"
#include "inference/tiny_model.h"

namespace sluice::testing {

class TinyModelFolder {
public:
    // `prefix` names the folder, so a leftover one says which test made it.
    explicit TinyModelFolder(const std::string& prefix)
        : path(std::filesystem::temp_directory_path() /
               (prefix + "-" + std::to_string(std::random_device{}()))) {
        std::filesystem::create_directories(path);
        auto tokenizer = app::open_cli_tokenizer(std::filesystem::path(SLUICE_SOURCE_DIR) /
                                                 "inference/assets/cl100k_base.tiktoken");
        REQUIRE_MESSAGE(tokenizer.ok(), tokenizer.status().to_string());
        inference::TinyModelOptions tiny{.preset = inference::TinyPreset::kTiny};
        tiny.write_tokenizer = [&](const std::string& out) {
            return inference::write_hf_tokenizer_files(**tokenizer, out);
        };
        REQUIRE(inference::write_tiny_model(model_dir(), tiny).ok());
    }
    ~TinyModelFolder() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TinyModelFolder(const TinyModelFolder&) = delete;
    TinyModelFolder& operator=(const TinyModelFolder&) = delete;

    std::string model_dir() const { return (path / "tiny").string(); }

    const std::filesystem::path path;
};

}  // namespace sluice::testing
