#include "inference/tokenizer_files.h"

#include <charconv>
#include <system_error>

#include "inference/detail/byte_codecs.h"
#include "inference/detail/read_file.h"
#include "inference/detail/sha256.h"
#include "inference/hf_tokenizer.h"

namespace sluice::inference {

Result<std::vector<std::optional<std::string>>> parse_tiktoken_ranks(std::string_view text) {
    std::vector<std::optional<std::string>> tokens;
    std::size_t line_number = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        ++line_number;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            continue;
        }
        auto where = [&] { return "rank file line " + std::to_string(line_number) + ": "; };
        std::size_t space = line.find(' ');
        if (space == std::string_view::npos) {
            return invalid_argument(where() + "expected '<base64> <rank>', found no space");
        }
        std::string_view rank_text = line.substr(space + 1);
        std::int64_t rank = -1;
        auto [ptr, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
        if (ec != std::errc() || ptr != rank_text.data() + rank_text.size() || rank < 0 ||
            rank >= (std::int64_t{1} << 30)) {
            return invalid_argument(where() + "rank '" + std::string(rank_text) +
                                    "' is not a number in 0..2^30");
        }
        auto bytes = detail::base64_decode(line.substr(0, space));
        if (!bytes || bytes->empty()) {
            return invalid_argument(where() + "token '" + std::string(line.substr(0, space)) +
                                    "' is not non-empty base64");
        }
        auto index = static_cast<std::size_t>(rank);
        if (index >= tokens.size()) {
            tokens.resize(index + 1);
        }
        if (tokens[index]) {
            return invalid_argument(where() + "rank " + std::to_string(rank) + " appears twice");
        }
        tokens[index] = std::move(*bytes);
    }
    if (tokens.empty()) {
        return invalid_argument("rank file holds no tokens");
    }
    return tokens;
}

Result<std::vector<std::optional<std::string>>> read_tiktoken_ranks(
    const std::filesystem::path& path, std::string_view expected_sha256) {
    SLUICE_ASSIGN_OR_RETURN(std::string text, detail::read_file(path));
    if (!expected_sha256.empty()) {
        std::string digest = detail::sha256_hex(text);
        if (digest != expected_sha256) {
            return data_loss("rank file '" + path.string() + "': sha256 " + digest +
                             ", expected " + std::string(expected_sha256));
        }
    }
    auto tokens = parse_tiktoken_ranks(text);
    if (!tokens) {
        return tokens.status().with_context("rank file " + path.string());
    }
    return tokens;
}

Result<std::unique_ptr<Tokenizer>> open_dbrx_tiktoken(const std::filesystem::path& path) {
    SLUICE_ASSIGN_OR_RETURN(auto tokens, read_tiktoken_ranks(path, kCl100kSha256));
    TokenizerSpec spec;
    spec.name = path.string();
    spec.bpe_tokens = std::move(tokens);
    spec.special_tokens = dbrx_special_tokens();
    spec.vocab_size = dbrx::kVocabSize;
    return Tokenizer::create(std::move(spec));
}

Result<std::unique_ptr<Tokenizer>> open_tokenizer(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        return open_hf_tokenizer(path);
    }
    if (std::filesystem::is_regular_file(path, ec)) {
        return open_dbrx_tiktoken(path);
    }
    return not_found("tokenizer '" + path.string() +
                     "': expected a .tiktoken file or a checkpoint folder with tokenizer.json");
}

}  // namespace sluice::inference
