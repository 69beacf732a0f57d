#include "app/index_deps.h"

#include <doctest/doctest.h>

#include "app/tokenize_command.h"

using namespace sluice;

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
        CHECK(chunk.tokens <= 64);
    }

    // Text the tokenizer refuses is still measured, not dropped.
    const std::string invalid = "valid words \xff\xfe then more words";
    CHECK(counter.token_offsets(invalid).size() ==
          retrieval::ApproxTokenCounter().token_offsets(invalid).size());
}
