#include "retrieval/chunker.h"

#include <doctest/doctest.h>

#include <atomic>
#include <random>
#include <string_view>

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

// Tokens as a byte-level BPE makes them out of text its merges know little of (cl100k_base on
// Devanagari, rare CJK, emoji): pieces of 1 to 4 bytes that end wherever they end, inside a
// UTF-8 character as often as not. Each piece's length comes from its first byte and position,
// so the pieces are a pure function of the text.
class ByteLevelCounter final : public TokenCounter {
public:
    std::vector<std::size_t> token_offsets(std::string_view text) const override {
        std::vector<std::size_t> offsets;
        for (std::size_t i = 0; i < text.size();) {
            offsets.push_back(i);
            i += 1 + (static_cast<unsigned char>(text[i]) + i) % 4;
        }
        return offsets;
    }
    std::string name() const override { return "byte-level"; }
    bool at_most_one_token_per_byte() const override { return true; }
};

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        auto byte = [&](std::size_t at) { return static_cast<unsigned char>(text[at]); };
        const unsigned char lead = byte(i);
        // 0: a continuation byte, an overlong lead (C0, C1) or one past U+10FFFF (F5 and up).
        std::size_t length = lead < 0x80   ? 1
                             : lead < 0xc2 ? 0
                             : lead < 0xe0 ? 2
                             : lead < 0xf0 ? 3
                             : lead < 0xf5 ? 4
                                           : 0;
        if (length == 0 || i + length > text.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            if ((byte(i + k) & 0xc0) != 0x80) {
                return false;
            }
        }
        const unsigned char second = length > 1 ? byte(i + 1) : 0;
        if ((lead == 0xe0 && second < 0xa0) || (lead == 0xed && second > 0x9f) ||
            (lead == 0xf0 && second < 0x90) || (lead == 0xf4 && second > 0x8f)) {
            return false;
        }
        i += length;
    }
    return true;
}

bool on_boundary(std::string_view text, std::size_t offset) {
    return offset == text.size() ||
           (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xc0) != 0x80);
}

// What every chunking of valid UTF-8 must give: chunks in order that move forward, begin and end
// on character boundaries, valid text, and every byte that is not white space in some chunk.
void check_chunks(std::string_view text, const std::vector<ChunkSpan>& chunks) {
    std::vector<char> covered(text.size(), 0);
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const ChunkSpan& chunk = chunks[i];
        INFO("chunk " << i << " [" << chunk.begin << ", " << chunk.end << ")");
        REQUIRE(chunk.begin < chunk.end);
        REQUIRE(chunk.end <= text.size());
        CHECK(on_boundary(text, chunk.begin));
        CHECK(on_boundary(text, chunk.end));
        CHECK(valid_utf8(text.substr(chunk.begin, chunk.end - chunk.begin)));
        if (i > 0) {
            CHECK(chunk.begin > chunks[i - 1].begin);
            CHECK(chunk.end > chunks[i - 1].end);
        }
        for (std::size_t at = chunk.begin; at < chunk.end; ++at) {
            covered[at] = 1;
        }
    }
    for (std::size_t at = 0; at < text.size(); ++at) {
        if (covered[at] == 0) {
            INFO("byte " << at << " of " << text.size());
            CHECK(std::string_view(" \t\n\r\f").find(text[at]) != std::string_view::npos);
        }
    }
}

// How many of the tokens `counter` makes of `text` (one unit: no sentence or line breaks) start
// inside a chunk or are cut by its start.
std::size_t tokens_touched(std::string_view text, const TokenCounter& counter,
                           const ChunkSpan& chunk) {
    auto offsets = counter.token_offsets(text);
    std::size_t touched = 0;
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        std::size_t end = i + 1 < offsets.size() ? offsets[i + 1] : text.size();
        touched += offsets[i] < chunk.end && end > chunk.begin ? 1 : 0;
    }
    return touched;
}

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

TEST_CASE("a unit cut at token boundaries is cut at character boundaries too") {
    ByteLevelCounter counter;
    // The report: 12 of 28 chunks of this text had offsets inside a character, with the
    // model's tokenizer, and their text was not valid UTF-8 (a 500 from the query's JSON).
    std::string hindi;
    for (int i = 0; i < 20; ++i) {
        hindi +=
            "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e "
            "\u0926\u0941\u0928\u093f\u092f\u093e \u0915\u0940 "
            "\u092a\u094d\u0930\u092e\u0941\u0916 \u092d\u093e\u0937\u093e "
            "\u0939\u0948 ";
    }
    std::string emoji;
    for (int i = 0; i < 60; ++i) {
        emoji += "\U0001F600\U0001F680 ok \U0001F44D\U0001F3FD";
    }
    std::string cjk;
    for (int i = 0; i < 80; ++i) {
        cjk +=
            "\u68c0\u7d22\u589e\u5f3a\u751f\u6210\u3001\u5411\u91cf\u6570\u636e"
            "\u5e93\u3002";
    }
    std::string mixed;
    for (int i = 0; i < 40; ++i) {
        mixed +=
            "caf\u00e9 \u043f\u0440\u0438\u0432\u0435\u0442 \u65e5\u672c "
            "\u0928\u092e\u0938\u094d\u0924\u0947 \U0001F30D ";
    }
    for (const std::string* text : {&hindi, &emoji, &cjk, &mixed}) {
        for (const ChunkingOptions options :
             {ChunkingOptions{32, 8}, ChunkingOptions{8, 0}, ChunkingOptions{9, 4},
              ChunkingOptions{64, 32}, ChunkingOptions{17, 3}}) {
            INFO("max_tokens " << options.max_tokens << " overlap " << options.overlap_tokens
                               << " text " << text->substr(0, 24));
            auto chunks = chunk_text(*text, counter, options);
            REQUIRE(chunks.size() > 2);
            check_chunks(*text, chunks);
            for (const auto& chunk : chunks) {
                // The start of a chunk moves back to its character's first byte: the budget
                // grows by at most that partial character (3 more single-byte tokens).
                CHECK(tokens_touched(*text, counter, chunk) <= options.max_tokens + 3);
            }
        }
    }
    // The reported case, cut as the report's 28 chunks were: windows of 32 tokens every 24.
    auto chunks = chunk_text(hindi, counter, ChunkingOptions{32, 8});
    CHECK(chunks.front().begin == 0);
    CHECK(chunks.back().end == hindi.size());
}

TEST_CASE("random texts of mixed scripts chunk into valid UTF-8 that covers them") {
    // Pieces the generator strings together: words in several scripts and widths (1 to 4 bytes
    // a character), sentence ends, line and paragraph breaks, headings, table rows, a fence.
    const std::vector<std::string> pieces = {"word",
                                             "retrieval",
                                             "Sentence",
                                             "caf\u00e9",
                                             "na\u00efve",
                                             "\u043f\u0440\u0438\u0432\u0435\u0442",
                                             "\u0928\u092e\u0938\u094d\u0924\u0947",
                                             "\u0939\u093f\u0928\u094d\u0926\u0940",
                                             "\u65e5\u672c\u8a9e",
                                             "\u68c0\u7d22",
                                             "\u3053\u3093\u306b\u3061\u306f",
                                             "\U0001F600",
                                             "\U0001F44D\U0001F3FD",
                                             "\U0001F680\U0001F30D",
                                             "12345",
                                             ",",
                                             ".",
                                             "!",
                                             "?",
                                             "\u3002",
                                             "\u0964"};
    const std::vector<std::string> breaks = {" ",    " ",    " ",     "  ",   ". ",     "\n",
                                             "\n\n", "\n# ", "\n## ", "\n| ", "\n```\n"};
    std::mt19937 random(20261127);
    ByteLevelCounter byte_level;
    ApproxTokenCounter approx;
    CountingCounter approx_counted(false);
    std::size_t chunked = 0;
    for (int round = 0; round < 400; ++round) {
        std::string text;
        const std::size_t words = random() % 400;
        for (std::size_t w = 0; w < words; ++w) {
            // Runs without any break too: one unit longer than max_tokens, cut by tokens.
            const std::size_t run = random() % 6 == 0 ? 1 + random() % 30 : 1;
            for (std::size_t r = 0; r < run; ++r) {
                text += pieces[random() % pieces.size()];
            }
            text += breaks[random() % breaks.size()];
        }
        const std::size_t max_tokens = 8 + random() % 57;
        const std::size_t overlap = random() % (max_tokens / 2 + 1);
        const ChunkingOptions options{max_tokens, overlap};
        REQUIRE(validate(options).ok());
        for (const TokenCounter* counter :
             std::vector<const TokenCounter*>{&byte_level, &approx, &approx_counted}) {
            INFO("round " << round << " max_tokens " << max_tokens << " overlap " << overlap
                          << " counter " << counter->name());
            auto chunks = chunk_text(text, *counter, options);
            check_chunks(text, chunks);
            chunked += chunks.size();
        }
    }
    CHECK(chunked > 1000);
}
