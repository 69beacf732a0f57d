#include "retrieval/text_analyzer.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <utility>

using namespace sluice::retrieval;
using sluice::StatusCode;

TEST_CASE("english analysis lower-cases, drops stop words and possessives, and stems") {
    auto analyzer = TextAnalyzer::create("english");
    REQUIRE(analyzer.ok());
    auto terms = (*analyzer)->analyze("The patient's Infections were RUNNING in 2 trials.");
    std::vector<std::string> expected = {"patient", "infect", "were", "run", "2", "trial"};
    CHECK(terms == expected);
}

TEST_CASE("stemming follows the index language") {
    auto german = TextAnalyzer::create("german");
    REQUIRE(german.ok());
    // "der" is a German stop word; "Häuser" and "Haus" share the Snowball stem "haus".
    auto terms = (*german)->analyze("der Häuser Haus");
    REQUIRE(terms.size() == 2);
    CHECK(terms[0] == "haus");
    CHECK(terms[1] == "haus");
    // The English stemmer leaves the German plural alone.
    auto english = TextAnalyzer::create("english");
    REQUIRE(english.ok());
    CHECK((*english)->analyze("Häuser") == std::vector<std::string>{"häuser"});

    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    CHECK((*none)->analyze("The running") == std::vector<std::string>{"the", "running"});
}

TEST_CASE("an unknown language is refused with the list on offer") {
    auto bad = TextAnalyzer::create("klingon");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
    CHECK(bad.status().message().find("english") != std::string::npos);
}

TEST_CASE("empty and punctuation-only text has no terms") {
    auto analyzer = TextAnalyzer::create("english");
    REQUIRE(analyzer.ok());
    CHECK((*analyzer)->analyze("").empty());
    CHECK((*analyzer)->analyze(" -- ,.; ").empty());
}

TEST_CASE("typographic punctuation separates words as its ASCII forms do") {
    auto analyzer = TextAnalyzer::create("english");
    REQUIRE(analyzer.ok());
    // Curly quotes, an em dash, a non-breaking space, an ellipsis, a Unicode hyphen, a degree sign.
    auto terms = (*analyzer)->analyze(
        "\u201cHoliday\u201d days\u2014twenty\u00a0five\u2026 IL\u20106 at 10\u00b0C");
    std::vector<std::string> expected = {"holiday", "day", "twenti", "five", "il", "6", "10", "c"};
    CHECK(terms == expected);
    // A typographic apostrophe makes a possessive like the straight one.
    CHECK((*analyzer)->analyze("patient\u2019s") == std::vector<std::string>{"patient"});
    CHECK((*analyzer)->analyze("patient's") == (*analyzer)->analyze("patient\u2019s"));
}

TEST_CASE("Unicode text is case-folded and normalised before stemming") {
    auto german = TextAnalyzer::create("german");
    REQUIRE(german.ok());
    // Upper-case umlauts fold to their lower-case forms and meet the same stem.
    CHECK((*german)->analyze("H\u00c4USER") == (*german)->analyze("H\u00e4user"));
    CHECK((*german)->analyze("\u00dcBER") == (*german)->analyze("\u00fcber"));
    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    // Decomposed and composed forms are one term; a soft hyphen does not split a word; the "fi"
    // ligature and full-width letters become their plain forms; sharp s folds to "ss".
    CHECK((*none)->analyze("cafe\u0301") == std::vector<std::string>{"caf\u00e9"});
    CHECK((*none)->analyze("CAF\u00c9") == std::vector<std::string>{"caf\u00e9"});
    CHECK((*none)->analyze("infor\u00admation") == std::vector<std::string>{"information"});
    CHECK((*none)->analyze("\ufb01nance") == std::vector<std::string>{"finance"});
    CHECK((*none)->analyze("\uff33\uff4c\uff55\uff49\uff43\uff45") ==
          std::vector<std::string>{"sluice"});
    CHECK((*none)->analyze("Stra\u00dfe") == std::vector<std::string>{"strasse"});
    // Greek and Cyrillic fold too; a Greek letter inside a word stays part of it.
    CHECK((*none)->analyze("\u0391\u0398\u0397\u039d\u0391 \u041c\u041e\u0421\u041a\u0412\u0410") ==
          std::vector<std::string>{"\u03b1\u03b8\u03b7\u03bd\u03b1",
                                   "\u043c\u043e\u0441\u043a\u0432\u0430"});
    CHECK((*none)->analyze("TNF\u03b1 levels") == std::vector<std::string>{"tnf\u03b1", "levels"});
}

TEST_CASE("ideographs and kana are one term per character; other scripts keep their words") {
    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    CHECK((*none)->analyze("\u6771\u4eac\u5927\u5b66\u3002ok") ==
          std::vector<std::string>{"\u6771", "\u4eac", "\u5927", "\u5b66", "ok"});
    CHECK((*none)->analyze("\u30c7\u30fc\u30bf") ==
          std::vector<std::string>{"\u30c7", "\u30fc", "\u30bf"});
    // Korean separates words with spaces.
    CHECK((*none)->analyze("\ud55c\uad6d\uc5b4 \ubb38\uc11c") ==
          std::vector<std::string>{"\ud55c\uad6d\uc5b4", "\ubb38\uc11c"});
    // Arabic letters and their combining marks stay one word.
    CHECK((*none)->analyze("\u0643\u0650\u062a\u064e\u0627\u0628") ==
          std::vector<std::string>{"\u0643\u0650\u062a\u064e\u0627\u0628"});
}

TEST_CASE("invalid UTF-8 separates words instead of failing the text") {
    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    CHECK((*none)->analyze(std::string("abc\xff\xfe"
                                       "def \xc3 \xe2\x82 caf\xc3\xa9")) ==
          std::vector<std::string>{"abc", "def", "caf\u00e9"});
    CHECK((*none)->analyze(std::string("\x80\x80")).empty());
}

TEST_CASE("ASCII text is analyzed exactly as version 1 analyzed it") {
    // Indexes of ASCII text keep their terms across the version change; a reference of the old
    // rule (runs of ASCII letters and digits, lower-cased, "'s" dropped) over every printable
    // ASCII character.
    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    std::string text;
    for (int c = 0x20; c < 0x7f; ++c) {
        text += static_cast<char>(c);
        text += "aB";
        text += static_cast<char>(c);
        text += "s ";
    }
    text += "it's 's O'Neill";
    std::vector<std::string> expected;
    std::string word;
    char before = ' ';
    for (std::size_t i = 0; i <= text.size(); ++i) {
        const char c = i < text.size() ? text[i] : ' ';
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            if (word.empty() && i > 0) {
                before = text[i - 1];
            }
            word += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        } else if (!word.empty()) {
            if (!(word == "s" && before == '\'')) {
                expected.push_back(word);
            }
            word.clear();
        }
    }
    CHECK((*none)->analyze(text) == expected);
}

namespace {

// Whether `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= text.size()) {
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (next & 0x3F);
        }
        const std::uint32_t least[] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

// UTF-8 of one code point.
std::string utf8_of(std::uint32_t cp) {
    std::string out;
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return out;
}

}  // namespace

TEST_CASE("random text: terms are valid UTF-8, non-empty, and stable when analyzed again") {
    auto none = TextAnalyzer::create("none");
    auto english = TextAnalyzer::create("english");
    REQUIRE(none.ok());
    REQUIRE(english.ok());
    std::mt19937 rng(20261127);
    // Code points from the ranges real text mixes: ASCII, Latin-1 and Latin Extended (case
    // pairs, ligatures), combining marks, Greek and Cyrillic, punctuation and spaces, CJK and
    // kana, Hangul, full-width forms, astral letters; plus raw bytes that are not UTF-8.
    const std::pair<std::uint32_t, std::uint32_t> ranges[] = {
        {0x20, 0x7E},     {0xA0, 0x24F},    {0x300, 0x36F},     {0x370, 0x4FF},
        {0x2000, 0x206F}, {0x3000, 0x30FF}, {0x4E00, 0x4E80},   {0xAC00, 0xAC80},
        {0xFB00, 0xFB06}, {0xFF01, 0xFF5E}, {0x1D400, 0x1D4FF}, {0x10400, 0x1044F}};
    for (int round = 0; round < 3000; ++round) {
        std::string text;
        const int length = static_cast<int>(rng() % 40);
        for (int i = 0; i < length; ++i) {
            if (rng() % 20 == 0) {
                text += static_cast<char>(0x80 + rng() % 0x80);  // a stray byte
                continue;
            }
            const auto& [low, high] = ranges[rng() % std::size(ranges)];
            text += utf8_of(low + rng() % (high - low + 1));
        }
        CAPTURE(text);
        const auto terms = (*none)->analyze(text);
        std::string joined;
        for (const auto& term : terms) {
            REQUIRE_FALSE(term.empty());
            REQUIRE(valid_utf8(term));
            joined += term + " ";
        }
        CHECK((*none)->analyze(joined) == terms);
        for (const auto& term : (*english)->analyze(text)) {
            REQUIRE(valid_utf8(term));
        }
    }
}

TEST_CASE("stop words of every listed language are dropped, and each list is in folded form") {
    auto none = TextAnalyzer::create("none");
    REQUIRE(none.ok());
    for (const char* language : {"english", "german", "french", "spanish", "italian", "portuguese",
                                 "dutch", "swedish", "danish", "norwegian", "russian"}) {
        CAPTURE(language);
        const auto& words = stop_words_for(language);
        REQUIRE(words.size() >= 30);
        auto analyzer = TextAnalyzer::create(language);
        REQUIRE(analyzer.ok());
        for (auto word : words) {
            CAPTURE(word);
            // The analyzer compares folded words: an entry that folding changes would never match.
            CHECK((*none)->analyze(word) == std::vector<std::string>{std::string(word)});
            CHECK((*analyzer)->analyze(word).empty());
        }
    }
    // Content words around them stay.
    auto italian = TextAnalyzer::create("italian");
    REQUIRE(italian.ok());
    CHECK((*italian)->analyze("Il gatto e la casa") == (*italian)->analyze("gatto casa"));
    auto russian = TextAnalyzer::create("russian");
    REQUIRE(russian.ok());
    CHECK((*russian)->analyze("\u041a\u043e\u0448\u043a\u0430 \u0438 \u0434\u043e\u043c") ==
          (*russian)->analyze("\u043a\u043e\u0448\u043a\u0430 \u0434\u043e\u043c"));
    CHECK((*russian)->analyze("\u043a\u043e\u0448\u043a\u0430 \u0434\u043e\u043c").size() == 2);
}
