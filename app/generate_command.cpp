#include "app/generate_command.h"

#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "app/bench_report.h"
#include "app/model_commands.h"
#include "inference/chat_template.h"
#include "inference/generator.h"
#include "inference/hf_tokenizer.h"
#include "inference/text_stream.h"

namespace sluice::app {
namespace {

using nlohmann::json;

struct GenerateOptions {
    std::string model;
    std::optional<std::string> prompt;
    std::optional<std::string> prompt_ids;
    bool chat = false;
    std::optional<std::string> system;
    std::string weights = "stored";
    std::string backend = "auto";
    int32_t max_tokens = 16;
    inference::SamplingParams sampling;
    std::vector<int32_t> stop_ids;
    std::vector<std::string> stop_strings;
    std::vector<std::string> logit_bias;  // "ID=BIAS" each
    bool json = false;
};

// "ID=BIAS" (e.g. 1234=-100) as a token bias; its limits are checked with the other sampling
// parameters (validate_sampling).
Result<inference::TokenBias> parse_token_bias(const std::string& text) {
    const size_t eq = text.find('=');
    Result<std::vector<int32_t>> id =
        eq == std::string::npos ? Result<std::vector<int32_t>>(invalid_argument("no '='"))
                                : parse_id_list(text.substr(0, eq));
    if (!id.ok() || id->size() != 1) {
        return invalid_argument("--logit-bias '" + text + "': expected ID=BIAS, e.g. 1234=-100");
    }
    try {
        size_t used = 0;
        const float bias = std::stof(text.substr(eq + 1), &used);
        if (used == text.size() - eq - 1) {
            return inference::TokenBias{(*id)[0], bias};
        }
    } catch (const std::exception&) {
    }
    return invalid_argument("--logit-bias '" + text + "': the bias is not a number");
}

// The prompt's ids: given directly, or the text encoded by the checkpoint's tokenizer, as a chat
// turn with --chat. Adds the chat template's end-of-turn ids to `stop_ids` for chat prompts.
Result<std::vector<int32_t>> prompt_ids(const GenerateOptions& options,
                                       const inference::Tokenizer* tokenizer,
                                       std::vector<int32_t>& stop_ids) {
    if (options.prompt_ids) {
        return parse_id_list(*options.prompt_ids);
    }
    if (tokenizer == nullptr) {
        return failed_precondition("model folder '" + options.model +
                                   "' has no tokenizer.json: give --prompt-ids");
    }
    if (!options.chat) {
        return tokenizer->encode(*options.prompt);
    }
    inference::ChatTemplateOptions template_options;
    if (options.system) {
        template_options.default_system_prompt = *options.system;
    }
    inference::ChatTemplate chat_template(template_options);
    std::vector<inference::ChatMessage> messages = {{.role = "user", .content = *options.prompt}};
    for (int32_t id : inference::ChatTemplate::stop_ids()) {
        stop_ids.push_back(id);
    }
    return chat_template.encode(*tokenizer, messages);
}

int run_generate(const GenerateOptions& options) {
    std::unique_ptr<inference::Tokenizer> tokenizer;
    if (std::filesystem::exists(std::filesystem::path(options.model) / "tokenizer.json")) {
        auto opened = inference::open_hf_tokenizer(options.model);
        if (!opened.ok()) {
            return report_failure("generate", opened.status());
        }
        tokenizer = std::move(*opened);
    }
    if ((options.chat || !options.stop_strings.empty()) && tokenizer == nullptr) {
        return report_failure("generate", failed_precondition("--chat and --stop need the model "
                                                              "folder's tokenizer.json"));
    }
    std::vector<int32_t> stop_ids = options.stop_ids;
    auto prompt = prompt_ids(options, tokenizer.get(), stop_ids);
    if (!prompt.ok()) {
        return report_failure("generate", prompt.status());
    }
    constexpr int32_t kBlockSize = 16;
    const int64_t positions = static_cast<int64_t>(prompt->size()) + options.max_tokens;
    auto backend =
        open_model(options.model, options.weights, positions, kBlockSize, options.backend);
    if (!backend.ok()) {
        return report_failure("generate", backend.status());
    }

    std::optional<inference::TextStream> text;
    if (tokenizer != nullptr) {
        text.emplace(*tokenizer, options.stop_strings, [&options](std::string_view piece) {
            if (!options.json) {
                std::cout << piece << std::flush;
            }
        });
    }
    inference::KvBlockPool pool((*backend)->kv_cache_spec().n_blocks, kBlockSize);
    inference::GenerationRequest request;
    request.prompt = *prompt;
    request.sampling = options.sampling;
    request.max_tokens = options.max_tokens;
    request.stop_tokens = stop_ids;
    request.text_stop = text ? &*text : nullptr;
    inference::Timings timings;
    auto result = inference::generate(**backend, pool, request, &timings);
    if (!result.ok()) {
        return report_failure("generate", result.status());
    }
    if (text) {
        text->finish();
    }

    const json usage = {{"prompt_tokens", result->usage.prompt_tokens},
                        {"completion_tokens", result->usage.completion_tokens},
                        {"total_tokens",
                         result->usage.prompt_tokens + result->usage.completion_tokens}};
    const json timing = {{"prefill_seconds", timings.prefill_seconds},
                         {"decode_seconds", timings.decode_seconds},
                         {"prefill_tokens_per_second", timings.prefill_tokens_per_second()},
                         {"decode_tokens_per_second", timings.decode_tokens_per_second()}};
    if (options.json) {
        json out = {{"ids", result->ids},
                    {"finish_reason", inference::finish_reason_name(result->finish)},
                    {"usage", usage},
                    {"timings", timing},
                    {"backend", (*backend)->name()}};
        if (text) {
            out["text"] = text->text();
        }
        if (options.sampling.top_logprobs > 0) {
            json logprobs = json::array();
            for (const inference::SampledToken& token : result->tokens) {
                json top = json::array();
                for (const auto& alt : token.top) {
                    top.push_back({{"id", alt.id}, {"logprob", alt.logprob}});
                }
                logprobs.push_back({{"id", token.id}, {"logprob", token.logprob}, {"top", top}});
            }
            out["logprobs"] = logprobs;
        }
        std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    if (!text) {
        std::cout << "ids      " << json(result->ids).dump() << "\n";
    } else {
        std::cout << "\n";
    }
    std::cerr << "backend " << (*backend)->name() << ", finish "
              << inference::finish_reason_name(result->finish) << ", usage "
              << usage.dump() << ", prefill "
              << format_fixed(timings.prefill_tokens_per_second(), 1) << " tokens/s, decode "
              << format_fixed(timings.decode_tokens_per_second(), 1) << " tokens/s\n";
    return 0;
}

}  // namespace

void add_generate_command(Cli& cli) {
    auto* command = cli.root().add_subcommand(
        "generate", "Generate text (or token ids) from a prompt with a DBRX checkpoint");
    auto options = std::make_shared<GenerateOptions>();
    auto& o = *options;
    command->add_option("--model", o.model, "Model folder (config.json + safetensors)")
        ->required();
    auto* prompt = command->add_option("--prompt", o.prompt, "Prompt text");
    auto* ids = command->add_option("--prompt-ids", o.prompt_ids, "Prompt token ids, e.g. 1,2,3");
    prompt->excludes(ids);
    ids->excludes(prompt);
    command->add_flag("--chat", o.chat, "Send the prompt as a user turn of the chat template")
        ->needs(prompt);
    command->add_option("--system", o.system, "System prompt for --chat (default: the built-in)");
    command->add_option("--max-tokens", o.max_tokens, "Most tokens to generate")
        ->check(CLI::Range(1, 1 << 20));
    command->add_option("--temperature", o.sampling.temperature, "0 is greedy");
    command->add_option("--top-k", o.sampling.top_k, "Keep the k most likely tokens (0: off)");
    command->add_option("--top-p", o.sampling.top_p, "Nucleus mass to keep (1: off)");
    command->add_option("--min-p", o.sampling.min_p, "Drop tokens below min_p x the top one");
    command->add_option("--presence-penalty", o.sampling.presence_penalty);
    command->add_option("--frequency-penalty", o.sampling.frequency_penalty);
    command->add_option("--repetition-penalty", o.sampling.repetition_penalty);
    command->add_option("--seed", o.sampling.seed, "Seed of the sampler");
    command->add_option("--logprobs", o.sampling.top_logprobs, "Top log-probabilities per token");
    command->add_option("--stop", o.stop_strings, "Text that ends generation (repeatable)");
    command->add_option("--stop-id", o.stop_ids, "A token id that ends generation (repeatable)");
    command->add_option("--logit-bias", o.logit_bias,
                        "ID=BIAS added to a token's logit, BIAS in [-100, 100] (repeatable)");
    add_weights_option(command, &o.weights);
    add_backend_option(command, &o.backend);
    command->add_flag("--json", o.json, "Print one JSON object: ids, text, usage, timings");
    cli.on_run(command, [options, prompt, ids] {
        if (prompt->count() == 0 && ids->count() == 0) {
            std::cerr << "sluice generate: give --prompt TEXT or --prompt-ids 1,2,3\n";
            return 2;
        }
        for (const std::string& text : options->logit_bias) {
            Result<inference::TokenBias> bias = parse_token_bias(text);
            if (!bias.ok()) {
                std::cerr << "sluice generate: " << bias.status().message() << "\n";
                return 2;
            }
            options->sampling.logit_bias.push_back(*bias);
        }
        return run_generate(*options);
    });
}

}  // namespace sluice::app
