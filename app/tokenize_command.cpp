#include "app/tokenize_command.h"

#include <cstdlib>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "inference/tokenizer_files.h"

namespace sluice::app {

namespace {

using nlohmann::json;

std::filesystem::path executable_path() {
    std::error_code ec;
    auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path() : path;
}

// Runs `body` over the non-blank lines of `in`; the first failure stops with "line N: ...".
template <typename Body>
int for_each_line(std::istream& in, std::ostream& err, Body body) {
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
            continue;
        }
        json doc;
        try {
            doc = json::parse(line);
        } catch (const json::exception& e) {
            err << "line " << number << ": not JSON: " << e.what() << "\n";
            return 1;
        }
        Status status = body(doc);
        if (!status.ok()) {
            err << "line " << number << ": " << status.message() << "\n";
            return 1;
        }
    }
    return 0;
}

}  // namespace

Result<std::filesystem::path> default_tokenizer_path() {
    if (const char* env = std::getenv("SLUICE_TOKENIZER"); env != nullptr && *env != '\0') {
        return std::filesystem::path(env);
    }
    std::filesystem::path exe_dir = executable_path().parent_path();
    std::vector<std::filesystem::path> candidates = {
        exe_dir / "../../inference/assets/cl100k_base.tiktoken",
        exe_dir / "../share/sluice/cl100k_base.tiktoken"};
    std::string looked;
    for (const auto& candidate : candidates) {
        std::error_code ec;
        if (std::filesystem::exists(candidate, ec)) {
            return candidate.lexically_normal();
        }
        looked += (looked.empty() ? "" : ", ") + candidate.lexically_normal().string();
    }
    return not_found("no tokenizer given and none found at " + looked +
                     "; pass --tokenizer PATH or set SLUICE_TOKENIZER");
}

Result<std::unique_ptr<inference::Tokenizer>> open_cli_tokenizer(const std::filesystem::path& path) {
    std::filesystem::path chosen = path;
    if (chosen.empty()) {
        SLUICE_ASSIGN_OR_RETURN(chosen, default_tokenizer_path());
    }
    return inference::open_tokenizer(chosen);
}

int run_tokenize(const inference::Tokenizer& tokenizer, const TokenizeOptions& options,
                 std::istream& in, std::ostream& out, std::ostream& err) {
    std::vector<inference::TokenId> ids;
    return for_each_line(in, err, [&](const json& doc) -> Status {
        if (!doc.is_object() || !doc.contains("text") || !doc["text"].is_string()) {
            return invalid_argument("expected an object with a string \"text\"");
        }
        ids.clear();
        SLUICE_RETURN_IF_ERROR(
            tokenizer.encode_into(doc["text"].get_ref<const std::string&>(), options.mode, ids));
        out << (options.count ? json{{"count", ids.size()}} : json{{"ids", ids}}).dump() << "\n";
        return Status();
    });
}

int run_detokenize(const inference::Tokenizer& tokenizer, std::istream& in, std::ostream& out,
                   std::ostream& err) {
    std::vector<inference::TokenId> ids;
    return for_each_line(in, err, [&](const json& doc) -> Status {
        if (!doc.is_object() || !doc.contains("ids") || !doc["ids"].is_array()) {
            return invalid_argument("expected an object with an array \"ids\"");
        }
        ids.clear();
        for (std::size_t i = 0; i < doc["ids"].size(); ++i) {
            const json& id = doc["ids"][i];
            if (!id.is_number_integer() ||
                id.get<std::int64_t>() < std::numeric_limits<inference::TokenId>::min() ||
                id.get<std::int64_t>() > std::numeric_limits<inference::TokenId>::max()) {
                return invalid_argument("ids[" + std::to_string(i) + "] is " + id.dump() +
                                        ", expected a token id");
            }
            ids.push_back(id.get<inference::TokenId>());
        }
        SLUICE_ASSIGN_OR_RETURN(std::string text, tokenizer.decode_text(ids));
        out << json{{"text", text}}.dump() << "\n";
        return Status();
    });
}

void add_tokenize_commands(Cli& cli) {
    struct Flags {
        std::string tokenizer;
        bool count = false;
        std::string special = "ordinary";
    };
    auto flags = std::make_shared<Flags>();

    auto* tokenize = cli.root().add_subcommand(
        "tokenize", "Encode JSON lines {\"text\": ...} from stdin into {\"ids\": [...]} lines");
    tokenize->add_option("--tokenizer", flags->tokenizer,
                         "A .tiktoken rank file or a checkpoint folder with tokenizer.json");
    tokenize->add_flag("--count", flags->count, "Write {\"count\": n} instead of the ids");
    tokenize->add_option("--special", flags->special,
                         "ordinary: special-token text is text; allow: it becomes special tokens")
        ->check(CLI::IsMember({"ordinary", "allow"}));
    cli.on_run(tokenize, [flags] {
        auto tokenizer = open_cli_tokenizer(flags->tokenizer);
        if (!tokenizer) {
            std::cerr << tokenizer.status().to_string() << "\n";
            return 1;
        }
        std::ios::sync_with_stdio(false);
        TokenizeOptions options{.count = flags->count,
                                .mode = flags->special == "allow"
                                            ? inference::SpecialTokenMode::kAllowed
                                            : inference::SpecialTokenMode::kOrdinary};
        return run_tokenize(**tokenizer, options, std::cin, std::cout, std::cerr);
    });

    auto* detokenize = cli.root().add_subcommand(
        "detokenize", "Decode JSON lines {\"ids\": [...]} from stdin into {\"text\": ...} lines");
    detokenize->add_option("--tokenizer", flags->tokenizer,
                           "A .tiktoken rank file or a checkpoint folder with tokenizer.json");
    cli.on_run(detokenize, [flags] {
        auto tokenizer = open_cli_tokenizer(flags->tokenizer);
        if (!tokenizer) {
            std::cerr << tokenizer.status().to_string() << "\n";
            return 1;
        }
        std::ios::sync_with_stdio(false);
        return run_detokenize(**tokenizer, std::cin, std::cout, std::cerr);
    });
}

}  // namespace sluice::app
