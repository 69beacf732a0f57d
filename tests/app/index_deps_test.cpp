#include "app/index_deps.h"

#include <doctest/doctest.h>

#include "app/tokenize_command.h"

using namespace sluice;

namespace {

// The model's counter with its promise of at most one token per byte withheld, so that
// chunk_text measures every unit with the tokenizer.
class WithoutPromise final : public retrieval::TokenCounter {
public:
    explicit WithoutPromise(const retrieval::TokenCounter& inner) : inner_(inner) {}
    std::vector<std::size_t> token_offsets(std::string_view text) const override {
        return inner_.token_offsets(text);
    }
    std::string name() const override { return inner_.name(); }

private:
    const retrieval::TokenCounter& inner_;
};

}  // namespace

TEST_CASE("index deps: chunks are measured in the model tokenizer's tokens") {
    auto opened = app::open_cli_tokenizer({});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::shared_ptr<const inference::Tokenizer> tokenizer(std::move(*opened));
    const app::ModelTokenCounter counter(tokenizer);
    CHECK(counter.name() == tokenizer->name());

    const std::string text =
        "# Setup\n\nInstall the server, then run `sluice serve`. Ünïcödé and 12345 digits.\n";
    const auto offsets = counter.token_offsets(text);
    const auto ids = tokenizer->encode(text);
    REQUIRE(ids.ok());
    REQUIRE(offsets.size() == ids->size());
    // Each offset is where its token's bytes begin in the text.
    for (std::size_t i = 0; i < ids->size(); ++i) {
        const auto bytes = tokenizer->token_bytes((*ids)[i]);
        REQUIRE(bytes.has_value());
        CHECK(text.compare(offsets[i], bytes->size(), *bytes) == 0);
    }

    // Chunk budgets hold in real tokens.
    std::string long_text;
    for (int i = 0; i < 200; ++i) {
        long_text += "Paragraph " + std::to_string(i) +
                     " explains how retention policies apply to archived tickets.\n\n";
    }
    const auto chunks = retrieval::chunk_text(long_text, counter, {.max_tokens = 64, .overlap_tokens = 8});
    REQUIRE(chunks.size() > 10);
    for (const auto& chunk : chunks) {
        auto count = tokenizer->count(std::string_view(long_text).substr(chunk.begin, chunk.end - chunk.begin));
        REQUIRE(count.ok());
        // Token boundaries can merge at a chunk's edges, so a chunk re-encoded alone may differ
        // by a token from its share of the whole text's tokens.
        CHECK(*count <= 64 + 1);
    }

    // Text the tokenizer refuses is still measured, not dropped.
    const std::string invalid = "valid words \xff\xfe then more words";
    CHECK(counter.token_offsets(invalid).size() ==
          retrieval::ApproxTokenCounter().token_offsets(invalid).size());
}

TEST_CASE("index deps: the model's tokens hold a byte each, so short sections skip the tokenizer") {
    auto opened = app::open_cli_tokenizer({});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    std::shared_ptr<const inference::Tokenizer> tokenizer(std::move(*opened));
    // Every BPE token of the vocabulary holds at least one byte.
    int empty = 0;
    for (inference::TokenId id = 0; id < tokenizer->n_bpe_ids(); ++id) {
        auto bytes = tokenizer->token_bytes(id);
        empty += bytes.has_value() && bytes->empty() ? 1 : 0;
    }
    CHECK(empty == 0);
    const app::ModelTokenCounter counter(tokenizer);
    REQUIRE(counter.at_most_one_token_per_byte());

    // Special-token text is plain text to the chunk counter (encoded as ordinary BPE), invalid
    // UTF-8 goes to the fallback: either way no more tokens than bytes, offsets ascending.
    std::vector<std::string> texts = {"\xff\xfe\xfd", "a\xc3", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80",
                                      "  \n\t ", "1234567890123", "<|im_start|>user<|im_end|>"};
    for (const auto& special : tokenizer->special_tokens()) {
        texts.push_back(special.text);
    }
    for (const auto& text : texts) {
        const auto offsets = counter.token_offsets(text);
        CHECK(offsets.size() <= text.size());
        for (std::size_t i = 0; i < offsets.size(); ++i) {
            CHECK(offsets[i] < text.size());
            CHECK((i == 0 || offsets[i] > offsets[i - 1]));
        }
    }

    // Chunks with and without the shortcut are the same, for every prefix of texts whose
    // sections end around max_tokens bytes.
    const WithoutPromise measuring(counter);
    const std::vector<std::string> documents = {
        "Ticket 4521: printer offline. <|endoftext|> Escalated to facilities.\n",
        "# Policy\n\nRetention is 90 days. Archived tickets keep attachments.\n\n## Scope\nAll "
        "queues.",
        "\n\nZ\xc3\xbcrich \xe2\x82\xac" "12 \xf0\x9f\x98\x80  caf\xc3\xa9. Invalid \xff byte.  ",
    };
    for (const std::size_t max_tokens : {std::size_t{8}, std::size_t{16}, std::size_t{32}}) {
        const retrieval::ChunkingOptions options{max_tokens, max_tokens / 4};
        for (const auto& document : documents) {
            for (std::size_t length = 0; length <= document.size(); ++length) {
                const std::string_view prefix(document.data(), length);
                INFO("max_tokens " << max_tokens << " text '" << std::string(prefix) << "'");
                CHECK(retrieval::chunk_text(prefix, counter, options) ==
                      retrieval::chunk_text(prefix, measuring, options));
            }
        }
    }
}
