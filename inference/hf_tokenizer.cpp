#include "inference/hf_tokenizer.h"

#include <fstream>
#include <map>
#include <system_error>

#include <nlohmann/json.hpp>

#include "inference/detail/byte_codecs.h"
#include "inference/detail/read_file.h"

namespace sluice::inference {

namespace {

using nlohmann::json;

// The regex GPT-2's ByteLevel pre-tokenizer applies when `use_regex` is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<json> read_json(const std::filesystem::path& path) {
    SLUICE_ASSIGN_OR_RETURN(std::string text, detail::read_file(path));
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        return invalid_argument("'" + path.string() + "' is not JSON: " + e.what());
    }
}

bool is_false_or_absent(const json& object, const char* key) {
    return !object.contains(key) || object[key].is_null() ||
           (object[key].is_boolean() && !object[key].get<bool>());
}

// The pre-tokenizer regex of tokenizer.json's "pre_tokenizer".
Result<std::string> read_pattern(const json& pre) {
    if (pre.is_null()) {
        return not_supported("pre_tokenizer is null; byte-level BPE needs a ByteLevel pre-tokenizer");
    }
    std::vector<json> steps;
    if (pre.value("type", "") == "Sequence") {
        for (const json& step : pre.at("pretokenizers")) {
            steps.push_back(step);
        }
    } else {
        steps.push_back(pre);
    }
    std::string pattern;
    bool byte_level = false;
    for (const json& step : steps) {
        std::string type = step.value("type", "");
        if (type == "Split") {
            const json& regex = step.at("pattern");
            if (!regex.contains("Regex") || !pattern.empty()) {
                return not_supported("pre_tokenizer: only one Split on a Regex is supported");
            }
            if (step.value("behavior", "") != "Isolated" || !is_false_or_absent(step, "invert")) {
                return not_supported("pre_tokenizer Split: behavior '" + step.value("behavior", "") +
                                     "', only 'Isolated' without invert is supported");
            }
            pattern = regex["Regex"].get<std::string>();
        } else if (type == "ByteLevel") {
            if (!is_false_or_absent(step, "add_prefix_space")) {
                return not_supported("pre_tokenizer ByteLevel: add_prefix_space is not supported");
            }
            bool use_regex = step.value("use_regex", true);
            if (use_regex && !pattern.empty()) {
                return not_supported("pre_tokenizer: a Split and a ByteLevel regex together");
            }
            if (use_regex) {
                pattern = std::string(kGpt2Pattern);
            }
            byte_level = true;
        } else {
            return not_supported("pre_tokenizer type '" + type + "' is not supported");
        }
    }
    if (!byte_level || pattern.empty()) {
        return not_supported("pre_tokenizer: expected a regex split and a ByteLevel step");
    }
    return pattern;
}

Status check_model(const json& model) {
    if (model.value("type", "") != "BPE") {
        return not_supported("model type '" + model.value("type", "") + "', expected 'BPE'");
    }
    bool no_dropout = !model.contains("dropout") || model["dropout"].is_null() ||
                      (model["dropout"].is_number() && model["dropout"].get<double>() == 0.0);
    if (!no_dropout) {
        return not_supported("model: BPE dropout is not supported (serving must be deterministic)");
    }
    if (!is_false_or_absent(model, "byte_fallback")) {
        return not_supported("model: byte_fallback is not supported (byte-level BPE has no unknowns)");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty()) {
            return not_supported(std::string("model: ") + key + " is not supported");
        }
    }
    return Status();
}

Result<TokenizerSpec> spec_from_json(const json& doc, const json& config, const json& model_config,
                                     const std::string& name) {
    TokenizerSpec spec;
    spec.name = name;
    if (doc.contains("normalizer") && !doc["normalizer"].is_null()) {
        return not_supported("normalizer '" + doc["normalizer"].value("type", "") +
                             "' is not supported");
    }
    SLUICE_ASSIGN_OR_RETURN(spec.pattern, read_pattern(doc.value("pre_tokenizer", json())));
    const json& model = doc.at("model");
    SLUICE_RETURN_IF_ERROR(check_model(model));
    spec.whole_piece_lookup = model.value("ignore_merges", false);

    std::map<std::string, TokenId> vocab_ids;  // byte-level spelling -> id
    for (const auto& [spelling, id_json] : model.at("vocab").items()) {
        auto id = id_json.get<TokenId>();
        auto bytes = detail::byte_level_decode(spelling);
        if (id < 0 || !bytes || bytes->empty()) {
            return invalid_argument("model.vocab: entry '" + spelling + "' (id " +
                                    std::to_string(id) + ") is not a byte-level token");
        }
        if (static_cast<std::size_t>(id) >= spec.bpe_tokens.size()) {
            spec.bpe_tokens.resize(static_cast<std::size_t>(id) + 1);
        }
        if (spec.bpe_tokens[id]) {
            return invalid_argument("model.vocab: id " + std::to_string(id) + " appears twice");
        }
        spec.bpe_tokens[id] = std::move(*bytes);
        vocab_ids.emplace(spelling, id);
    }

    std::vector<std::pair<TokenId, TokenId>> merges;
    const json& merge_list = model.at("merges");
    merges.reserve(merge_list.size());
    for (std::size_t index = 0; index < merge_list.size(); ++index) {
        const json& entry = merge_list[index];
        std::string left;
        std::string right;
        if (entry.is_string()) {
            auto text = entry.get<std::string>();
            std::size_t space = text.find(' ');
            if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
                return invalid_argument("model.merges[" + std::to_string(index) + "]: '" + text +
                                        "', expected two tokens separated by one space");
            }
            left = text.substr(0, space);
            right = text.substr(space + 1);
        } else {
            left = entry.at(0).get<std::string>();
            right = entry.at(1).get<std::string>();
        }
        auto l = vocab_ids.find(left);
        auto r = vocab_ids.find(right);
        if (l == vocab_ids.end() || r == vocab_ids.end()) {
            return invalid_argument("model.merges[" + std::to_string(index) + "]: '" + left +
                                    "' or '" + right + "' is not in model.vocab");
        }
        merges.emplace_back(l->second, r->second);
    }
    spec.merges = std::move(merges);

    std::map<TokenId, std::string> specials;
    auto add_special = [&](TokenId id, const std::string& text) -> Status {
        if (id >= 0 && static_cast<std::size_t>(id) < spec.bpe_tokens.size() &&
            spec.bpe_tokens[id] && detail::byte_level_encode(*spec.bpe_tokens[id]) == text) {
            return Status();  // an added token that repeats a vocabulary entry
        }
        auto [it, inserted] = specials.emplace(id, text);
        if (!inserted && it->second != text) {
            return invalid_argument("added token id " + std::to_string(id) + " is both '" +
                                    it->second + "' and '" + text + "'");
        }
        return Status();
    };
    for (const json& added : doc.value("added_tokens", json::array())) {
        SLUICE_RETURN_IF_ERROR(
            add_special(added.at("id").get<TokenId>(), added.at("content").get<std::string>()));
    }
    if (config.contains("added_tokens_decoder")) {
        for (const auto& [id_text, added] : config["added_tokens_decoder"].items()) {
            SLUICE_RETURN_IF_ERROR(
                add_special(std::stoi(id_text), added.at("content").get<std::string>()));
        }
    }
    for (auto& [id, text] : specials) {
        spec.special_tokens.push_back({text, id});
    }
    if (model_config.contains("vocab_size")) {
        spec.vocab_size = model_config["vocab_size"].get<int>();
    }
    return spec;
}

Status check_named_specials(const Tokenizer& tokenizer, const json& config) {
    for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
        if (!config.contains(key) || config[key].is_null()) {
            continue;
        }
        const json& value = config[key];
        std::string text = value.is_object() ? value.value("content", "") : value.get<std::string>();
        if (!tokenizer.special_token_id(text)) {
            return invalid_argument(std::string("tokenizer_config.json: ") + key + " '" + text +
                                    "' is not an added token");
        }
    }
    return Status();
}

Status write_text_file(const std::filesystem::path& path, const std::string& text) {
    std::filesystem::path temp = path;
    temp += ".tmp";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        out.flush();
        if (!out) {
            return io_error("cannot write '" + temp.string() + "'");
        }
    }
    std::error_code ec;
    std::filesystem::rename(temp, path, ec);
    if (ec) {
        return io_error("cannot rename '" + temp.string() + "' to '" + path.string() +
                        "': " + ec.message());
    }
    return Status();
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> open_hf_tokenizer(const std::filesystem::path& dir) {
    std::filesystem::path tokenizer_path = dir / "tokenizer.json";
    auto doc = read_json(tokenizer_path);
    if (!doc) {
        return doc.status();
    }
    json config = json::object();
    json model_config = json::object();
    std::error_code ec;
    if (std::filesystem::exists(dir / "tokenizer_config.json", ec)) {
        SLUICE_ASSIGN_OR_RETURN(config, read_json(dir / "tokenizer_config.json"));
    }
    if (std::filesystem::exists(dir / "config.json", ec)) {
        SLUICE_ASSIGN_OR_RETURN(model_config, read_json(dir / "config.json"));
    }
    Result<TokenizerSpec> spec = invalid_argument("unset");
    try {
        spec = spec_from_json(*doc, config, model_config, dir.string());
    } catch (const std::exception& e) {
        // nlohmann::json reports a missing field or a wrong type by exception; std::stoi too.
        return invalid_argument("'" + tokenizer_path.string() + "' or its config: " + e.what());
    }
    if (!spec) {
        return spec.status().with_context("'" + tokenizer_path.string() + "'");
    }
    SLUICE_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::create(std::move(*spec)));
    try {
        SLUICE_RETURN_IF_ERROR(check_named_specials(*tokenizer, config));
    } catch (const json::exception& e) {
        return invalid_argument("tokenizer_config.json: " + std::string(e.what()));
    }
    return tokenizer;
}

Status write_hf_tokenizer_files(const Tokenizer& tokenizer, const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        return io_error("cannot create '" + dir.string() + "': " + ec.message());
    }
    // nlohmann's ordered_json finds keys by linear search, quadratic over 100k entries: the
    // files use sorted keys instead, which Hugging Face readers do not mind.
    json vocab = json::object();
    std::vector<std::string> spellings(static_cast<std::size_t>(tokenizer.n_bpe_ids()));
    for (TokenId id = 0; id < tokenizer.n_bpe_ids(); ++id) {
        if (auto bytes = tokenizer.token_bytes(id); bytes && !tokenizer.is_special(id)) {
            spellings[id] = detail::byte_level_encode(*bytes);
            vocab[spellings[id]] = id;
        }
    }
    json merges = json::array();
    for (const auto& merge : tokenizer.merges()) {
        merges.push_back(spellings[merge[0]] + " " + spellings[merge[1]]);
    }
    json added = json::array();
    json added_decoder = json::object();
    for (const SpecialToken& special : tokenizer.special_tokens()) {
        json entry = {{"id", special.id},          {"content", special.text},
                              {"single_word", false},      {"lstrip", false},
                              {"rstrip", false},           {"normalized", false},
                              {"special", true}};
        added.push_back(entry);
        entry.erase("id");
        added_decoder[std::to_string(special.id)] = entry;
    }
    json doc = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", added},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           json::array({{{"type", "Split"},
                                 {"pattern", {{"Regex", tokenizer.pattern()}}},
                                 {"behavior", "Isolated"},
                                 {"invert", false}},
                                {{"type", "ByteLevel"},
                                 {"add_prefix_space", false},
                                 {"trim_offsets", true},
                                 {"use_regex", false}}})}}},
        {"post_processor", nullptr},
        {"decoder",
         {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
          {"use_regex", true}}},
        {"model",
         {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"continuing_subword_prefix", ""},
          {"end_of_word_suffix", ""},
          {"fuse_unk", false},
          {"byte_fallback", false},
          {"ignore_merges", tokenizer.whole_piece_lookup()},
          {"vocab", vocab},
          {"merges", merges}}}};

    json config = {{"add_bos_token", false},
                           {"add_eos_token", false},
                           {"added_tokens_decoder", added_decoder},
                           {"clean_up_tokenization_spaces", false},
                           {"model_max_length", 32768},
                           {"tokenizer_class", "PreTrainedTokenizerFast"}};
    auto name_of = [&](TokenId id) -> std::optional<std::string> {
        if (tokenizer.is_special(id)) {
            return std::string(*tokenizer.token_bytes(id));
        }
        return std::nullopt;
    };
    if (auto eos = name_of(dbrx::kEndOfText)) {
        config["bos_token"] = *eos;
        config["eos_token"] = *eos;
        config["unk_token"] = *eos;
    }
    if (auto pad = name_of(dbrx::kPad)) {
        config["pad_token"] = *pad;
    }
    std::string doc_text;
    std::string config_text;
    try {
        doc_text = doc.dump(1);
        config_text = config.dump(2);
    } catch (const json::exception& e) {
        return internal_error("tokenizer files for '" + tokenizer.name() + "': " + e.what());
    }
    SLUICE_RETURN_IF_ERROR(write_text_file(dir / "tokenizer.json", doc_text + "\n"));
    return write_text_file(dir / "tokenizer_config.json", config_text + "\n");
}

}  // namespace sluice::inference
