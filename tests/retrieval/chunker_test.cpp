#include "retrieval/chunker.h"

#include <doctest/doctest.h>

#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::retrieval::testing::numbered;

namespace {

std::string sentence(int n) {
    return numbered("Sentence number ", n) + " talks about retrieval quality. ";
}

}  // namespace

TEST_CASE("the approximate counter splits words, digit groups and punctuation") {
    ApproxTokenCounter counter;
    CHECK(counter.token_offsets("").empty());
    CHECK(counter.token_offsets("hello world").size() == 2);
    CHECK(counter.token_offsets("internationalization").size() == 4);  // 20 letters / 6
    CHECK(counter.token_offsets("12345").size() == 2);
    CHECK(counter.token_offsets("a, b.").size() == 4);
    auto offsets = counter.token_offsets("ab cd");
    CHECK(offsets == std::vector<std::size_t>{0, 2});
}

TEST_CASE("chunks respect max_tokens, overlap and sentence boundaries") {
    std::string text;
    for (int i = 0; i < 60; ++i) {
        text += sentence(i);
    }
    ApproxTokenCounter counter;
    ChunkingOptions options{64, 16};
    auto chunks = chunk_text(text, counter, options);
    REQUIRE(chunks.size() > 5);
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto& chunk = chunks[i];
        CHECK(chunk.tokens <= 64);
        CHECK(counter.token_offsets(text.substr(chunk.begin, chunk.end - chunk.begin)).size() <=
              64);
        // Every chunk starts at a sentence start and ends at a sentence end.
        CHECK(text.compare(chunk.begin, 8, "Sentence") == 0);
        CHECK(text[chunk.end - 1] == '.');
        if (i > 0) {
            CHECK(chunk.begin < chunks[i - 1].end);  // overlap with the previous chunk
            CHECK(chunk.begin > chunks[i - 1].begin);
        }
    }
    CHECK(chunks.back().end == text.size() - 1);
}

TEST_CASE("markdown headings give each chunk its section path and are never crossed") {
    std::string text =
        "Preface text.\n\n# Guide\n\nIntro para.\n\n## Install\n\nRun the installer. Then "
        "reboot.\n\n## Use\n\n| a | b |\n| 1 | 2 |\n\n# Appendix\n\nLast words.\n";
    ApproxTokenCounter counter;
    auto chunks = chunk_text(text, counter, ChunkingOptions{512, 32});
    REQUIRE(chunks.size() == 5);
    CHECK(chunks[0].section_path.empty());
    CHECK(chunks[1].section_path == std::vector<std::string>{"Guide"});
    CHECK(chunks[2].section_path == std::vector<std::string>{"Guide", "Install"});
    CHECK(chunks[3].section_path == std::vector<std::string>{"Guide", "Use"});
    CHECK(chunks[4].section_path == std::vector<std::string>{"Appendix"});
    CHECK(text.substr(chunks[2].begin, chunks[2].end - chunks[2].begin) ==
          "## Install\n\nRun the installer. Then reboot.");
    CHECK(text.substr(chunks[3].begin, chunks[3].end - chunks[3].begin) ==
          "## Use\n\n| a | b |\n| 1 | 2 |");
}

TEST_CASE("table rows are units and an oversized sentence is cut at token boundaries") {
    std::string table = "| h1 | h2 |\n";
    for (int row = 0; row < 40; ++row) {
        table += numbered("| value ", row) + " | other |\n";
    }
    ApproxTokenCounter counter;
    auto chunks = chunk_text(table, counter, ChunkingOptions{40, 8});
    REQUIRE(chunks.size() > 2);
    for (const auto& chunk : chunks) {
        CHECK(table[chunk.begin] == '|');
        CHECK(table[chunk.end - 1] == '|');
    }

    std::string run_on;
    for (int i = 0; i < 300; ++i) {
        run_on += "word ";
    }
    auto pieces = chunk_text(run_on, counter, ChunkingOptions{100, 10});
    REQUIRE(pieces.size() == 4);  // 300 tokens, windows of 100 stepping 90
    CHECK(pieces[0].tokens == 100);
    CHECK(pieces[0].begin == 0);
    CHECK(pieces.back().end == run_on.size());
}

TEST_CASE("invalid chunking options are refused") {
    CHECK_FALSE(validate(ChunkingOptions{4, 0}).ok());
    CHECK_FALSE(validate(ChunkingOptions{64, 40}).ok());
    CHECK(validate(ChunkingOptions{64, 32}).ok());
    ApproxTokenCounter counter;
    CHECK(chunk_text("", counter, ChunkingOptions{}).empty());
}
