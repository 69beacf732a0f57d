#include "inference/text_stream.h"

#include <doctest/doctest.h>

#include "tokenizer_fixture.h"

using namespace sluice::inference;
using sluice::inference::testing::dbrx_tokenizer;

namespace {

// Feeds every id of `text`'s encoding through a TextStream; returns what the user saw.
struct Fed {
    std::string shown;
    bool stopped = false;
    std::size_t tokens_taken = 0;
};

Fed feed(const std::vector<TokenId>& ids, std::vector<std::string> stops) {
    Fed fed;
    TextStream stream(dbrx_tokenizer(), std::move(stops),
                      [&](std::string_view piece) { fed.shown.append(piece); });
    for (TokenId id : ids) {
        ++fed.tokens_taken;
        if (stream.on_token(id)) {
            fed.stopped = true;
            break;
        }
    }
    stream.finish();
    CHECK(stream.text() == fed.shown);
    return fed;
}

}  // namespace

TEST_CASE("without stop strings the stream shows exactly the decoded text") {
    const std::string text = "Grüße, 世界! 👩‍👩‍👧 and a longer tail of words";
    auto ids = dbrx_tokenizer().encode(text);
    REQUIRE(ids.ok());
    Fed fed = feed(*ids, {});
    CHECK_FALSE(fed.stopped);
    CHECK(fed.shown == text);
}

TEST_CASE("a stop string spanning tokens ends the stream and is never shown") {
    const std::string text = "alpha beta END_OF_ANSWER gamma delta";
    auto ids = dbrx_tokenizer().encode(text);
    REQUIRE(ids.ok());
    Fed fed = feed(*ids, {"END_OF_ANSWER"});
    CHECK(fed.stopped);
    CHECK(fed.shown == "alpha beta ");
    CHECK(fed.tokens_taken < ids->size());
}

TEST_CASE("a prefix of a stop string that does not complete is released at the end") {
    const std::string text = "the answer is END_OF";
    auto ids = dbrx_tokenizer().encode(text);
    REQUIRE(ids.ok());
    Fed fed = feed(*ids, {"END_OF_ANSWER"});
    CHECK_FALSE(fed.stopped);
    CHECK(fed.shown == text);
}

TEST_CASE("special tokens are not shown as text") {
    auto ids = dbrx_tokenizer().encode("done", SpecialTokenMode::kOrdinary);
    REQUIRE(ids.ok());
    std::vector<TokenId> with_end = *ids;
    with_end.push_back(dbrx::kImEnd);
    Fed fed = feed(with_end, {});
    CHECK(fed.shown == "done");
}

TEST_CASE("a character split across tokens is shown whole, a cut one as U+FFFD") {
    auto bytes = dbrx_tokenizer().encode("🦀");
    REQUIRE(bytes.ok());
    REQUIRE(bytes->size() > 1);  // the crab is several byte tokens in cl100k
    CHECK(feed(*bytes, {}).shown == "🦀");
    std::vector<TokenId> cut(bytes->begin(), bytes->end() - 1);
    CHECK(feed(cut, {}).shown == "\xEF\xBF\xBD");
}
