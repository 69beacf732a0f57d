#include "retrieval/chunker.h"

#include <doctest/doctest.h>

#include <atomic>

#include "temp_dir.h"

using namespace sluice::retrieval;
using sluice::retrieval::testing::numbered;

namespace {

std::string sentence(int n) {
    return numbered("Sentence number ", n) + " talks about retrieval quality. ";
}

// ApproxTokenCounter's tokens, counting its calls, with or without its promise of at most one
// token per byte (without it chunk_text measures every unit).
class CountingCounter final : public TokenCounter {
public:
    explicit CountingCounter(bool promise) : promise_(promise) {}
    std::vector<std::size_t> token_offsets(std::string_view text) const override {
        ++calls;
        return inner_.token_offsets(text);
    }
    std::string name() const override { return inner_.name(); }
    bool at_most_one_token_per_byte() const override { return promise_; }

    mutable std::atomic<int> calls{0};

private:
    ApproxTokenCounter inner_;
    bool promise_;
};

}  // namespace

TEST_CASE("the approximate counter splits words, digit groups and punctuation") {
    ApproxTokenCounter counter;
    CHECK(counter.token_offsets("").empty());
    CHECK(counter.token_offsets("hello world").size() == 2);
    CHECK(counter.token_offsets("internationalization").size() == 4);  // 20 letters / 6
    CHECK(counter.token_offsets("12345").size() == 2);
    CHECK(counter.token_offsets("a, b.").size() == 4);
    // Never more tokens than bytes, whatever the bytes (the chunker's shortcut relies on it).
    CHECK(counter.at_most_one_token_per_byte());
    for (const std::string text : {" ", "   ", "a", " a ", "\xff\xfe\x80", "\xc3", "x\n\n\t",
                                   "12345678901", "..,;!?", "caf\xc3\xa9 \xe2\x82\xac 9"}) {
        auto offsets = counter.token_offsets(text);
        CHECK(offsets.size() <= text.size());
        for (std::size_t i = 0; i < offsets.size(); ++i) {
            CHECK(offsets[i] < text.size());
            CHECK((i == 0 || offsets[i] > offsets[i - 1]));
        }
    }
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
    CHECK(counter.token_offsets(std::string_view(run_on).substr(pieces[0].begin,
                                                                pieces[0].end - pieces[0].begin))
              .size() == 100);
    CHECK(pieces[0].begin == 0);
    CHECK(pieces.back().end == run_on.size());
}

TEST_CASE("an overlap leaves room for the next unit: no chunk only repeats the one before") {
    // Sentences of 3, 3, 3 and 9 tokens, windows of 10 with an overlap of 4: the third sentence
    // fits the overlap, but then not the fourth beside it. A chunk of the third sentence alone,
    // inside the one before, came out between them.
    const std::string text = "One two. Three four. Five six. Seven a b c d e f g.";
    ApproxTokenCounter counter;
    auto chunks = chunk_text(text, counter, ChunkingOptions{10, 4});
    REQUIRE(chunks.size() == 2);
    CHECK(text.substr(chunks[0].begin, chunks[0].end - chunks[0].begin) ==
          "One two. Three four. Five six.");
    CHECK(text.substr(chunks[1].begin, chunks[1].end - chunks[1].begin) ==
          "Seven a b c d e f g.");
    // Where the overlap leaves room, it stays: windows of 12 take the third sentence again.
    chunks = chunk_text(text, counter, ChunkingOptions{12, 4});
    REQUIRE(chunks.size() == 2);
    CHECK(text.substr(chunks[1].begin, chunks[1].end - chunks[1].begin) ==
          "Five six. Seven a b c d e f g.");
}

TEST_CASE("invalid chunking options are refused") {
    CHECK_FALSE(validate(ChunkingOptions{4, 0}).ok());
    CHECK_FALSE(validate(ChunkingOptions{64, 40}).ok());
    CHECK(validate(ChunkingOptions{64, 32}).ok());
    ApproxTokenCounter counter;
    CHECK(chunk_text("", counter, ChunkingOptions{}).empty());
}

TEST_CASE("a section no longer than max_tokens bytes is one chunk, the same as counting gives") {
    // Texts whose structure moves a chunk's edges: leading blank lines, trailing spaces, a
    // heading, a code fence, table rows, several sections, multi-byte characters.
    const std::vector<std::string> texts = {
        "Short row text.",
        "\n\n  Leading blank lines. Then a sentence.  \n\n",
        "# Title\n\nBody under the title. Second one!\n",
        "Preface.\n# A\nalpha beta\n## B\ngamma delta epsilon zeta eta theta\n",
        "```\ncode block line\n```\nafter the code. And more words here.",
        "| a | b |\n| 1 | 2 |\n| 333 | 4444 |\ntext after the table",
        "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e. \xe2\x82\xac" "12345 \xf0\x9f\x98\x80 ok.",
        "word word word word word word word word word word word word word word word word",
    };
    CountingCounter counting(false);
    CountingCounter shortcut(true);
    std::size_t compared = 0;
    for (const std::size_t max_tokens :
         {std::size_t{8}, std::size_t{9}, std::size_t{16}, std::size_t{24}, std::size_t{40}}) {
        for (const std::size_t overlap : {std::size_t{0}, max_tokens / 4, max_tokens / 2}) {
            const ChunkingOptions options{max_tokens, overlap};
            for (const auto& text : texts) {
                // Every prefix: sections end at, just below and just above max_tokens bytes.
                for (std::size_t length = 0; length <= text.size(); ++length) {
                    const std::string_view prefix(text.data(), length);
                    const auto expected = chunk_text(prefix, counting, options);
                    const auto got = chunk_text(prefix, shortcut, options);
                    INFO("max_tokens " << max_tokens << " overlap " << overlap << " text '"
                                       << std::string(prefix) << "'");
                    CHECK(got == expected);
                    ++compared;
                }
            }
        }
    }
    CHECK(compared > 1000);

    // The shortcut is taken at the boundary and not past it.
    const ChunkingOptions options{16, 4};
    const std::string at = "sixteen bytes ok";
    REQUIRE(at.size() == 16);
    shortcut.calls = 0;
    CHECK(chunk_text(at, shortcut, options).size() == 1);
    CHECK(shortcut.calls == 0);
    CHECK(chunk_text(at + "!", shortcut, options).size() == 1);
    CHECK(shortcut.calls > 0);
    // A counter without the promise is always asked.
    counting.calls = 0;
    CHECK(chunk_text("short", counting, options).size() == 1);
    CHECK(counting.calls > 0);
}
