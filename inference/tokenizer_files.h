#pragma once
// Loading the DBRX tokenizer from files: OpenAI's `.tiktoken` rank format, or a Hugging Face
// checkpoint folder (hf_tokenizer.h), chosen by what the path is.
//
// A `.tiktoken` file is one `<base64 token bytes> <rank>` line per token. DBRX is trained on
// cl100k_base, so a rank file opened as the DBRX tokenizer must hash to kCl100kSha256: different
// ranks would give the model ids it never saw, silently.
//
// Thread safety: free functions; results are owned by the caller.

#include <filesystem>
#include <memory>
#include <string_view>

#include "common/result.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

// sha256 of OpenAI's cl100k_base.tiktoken.
inline constexpr std::string_view kCl100kSha256 =
    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7";

// Parses `.tiktoken` text into BPE token bytes indexed by rank. kInvalidArgument naming the line
// for bad base64, a missing or non-numeric rank, or a repeated rank or token.
Result<std::vector<std::optional<std::string>>> parse_tiktoken_ranks(std::string_view text);

// Reads and parses a `.tiktoken` file. With `expected_sha256` non-empty, kDataLoss when the
// file's sha256 differs (the message gives both).
Result<std::vector<std::optional<std::string>>> read_tiktoken_ranks(
    const std::filesystem::path& path, std::string_view expected_sha256);

// The DBRX tokenizer over a cl100k_base rank file (sha256 verified), with DBRX's special tokens
// and vocabulary size.
Result<std::unique_ptr<Tokenizer>> open_dbrx_tiktoken(const std::filesystem::path& path);

// A `.tiktoken` file (open_dbrx_tiktoken) or a checkpoint folder holding tokenizer.json
// (open_hf_tokenizer). kNotFound when the path is neither.
Result<std::unique_ptr<Tokenizer>> open_tokenizer(const std::filesystem::path& path);

}  // namespace sluice::inference
