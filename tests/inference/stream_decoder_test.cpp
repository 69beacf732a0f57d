#include "inference/stream_decoder.h"

#include "inference/detail/utf8.h"
#include "tokenizer_fixture.h"

namespace sluice::inference {
namespace {

using testing::dbrx_tokenizer;

TEST_CASE("streamed text never holds part of a character and adds up to the whole") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    const std::string texts[] = {"中文的流式输出 😀👨‍👩‍👧 𓀀𓀁 ꙮ", "plain ascii", "ภาษาไทย عربى 한국어",
                                 "e\u0301\u0302 zalgo"};
    for (const std::string& text : texts) {
        auto ids = *tokenizer.encode(text);
        StreamDecoder decoder(tokenizer);
        std::string streamed;
        bool held_something = false;
        for (TokenId id : ids) {
            auto piece = decoder.push(id);
            REQUIRE(piece.ok());
            CHECK(!detail::find_invalid_utf8(*piece).has_value());
            held_something |= decoder.pending_bytes() > 0;
            streamed += *piece;
        }
        streamed += decoder.finish();
        CHECK(streamed == text);
        if (text.starts_with("中文")) {
            CHECK(held_something);  // the test exercises holding back
        }
    }
}

TEST_CASE("an unfinished character at the end is flushed as U+FFFD") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    auto ids = *tokenizer.encode("\xF0\x93\x80\x80");
    REQUIRE(ids.size() >= 2);
    StreamDecoder decoder(tokenizer);
    CHECK(decoder.push(ids[0])->empty());
    CHECK(decoder.pending_bytes() > 0);
    CHECK(decoder.finish() == "\xEF\xBF\xBD");
    CHECK(decoder.pending_bytes() == 0);
    // Continuation bytes with no start can never complete: replaced at once, not held.
    auto continuation = *tokenizer.decode(std::vector<TokenId>{ids[1]});
    REQUIRE((static_cast<unsigned char>(continuation[0]) & 0xC0) == 0x80);
    std::string expected;
    detail::append_utf8_lossy(expected, continuation);
    StreamDecoder fresh(tokenizer);
    CHECK(*fresh.push(ids[1]) == expected);
    CHECK(expected.starts_with("\xEF\xBF\xBD"));
    CHECK(fresh.pending_bytes() == 0);
    CHECK(!fresh.push(100300).ok());
}

TEST_CASE("special tokens add no text when skipped, their text when not") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    auto hello = *tokenizer.encode("hello");
    StreamDecoder skipping(tokenizer, true);
    StreamDecoder writing(tokenizer);
    std::string skipped;
    std::string written;
    for (TokenId id : {dbrx::kImStart, hello[0], dbrx::kFimPrefix, dbrx::kEndOfText}) {
        skipped += *skipping.push(id);
        written += *writing.push(id);
    }
    CHECK(skipped == "hello");
    CHECK(written == "<|im_start|>hello<|fim_prefix|><|endoftext|>");
    CHECK(!skipping.push(100300).ok());  // an id held by no token is still an error
}

std::string run_stops(std::vector<std::string> stops, const std::vector<std::string>& chunks,
                      bool* stopped = nullptr) {
    StopMatcher matcher(std::move(stops));
    std::string out;
    for (const std::string& chunk : chunks) {
        StopResult result = matcher.push(chunk);
        out += result.text;
        if (result.stopped) {
            if (stopped != nullptr) {
                *stopped = true;
            }
            return out;
        }
    }
    return out + matcher.finish();
}

TEST_CASE("stop strings match across chunk boundaries without leaking a prefix") {
    bool stopped = false;
    CHECK(run_stops({"STOP"}, {"Hello S", "TO", "P world"}, &stopped) == "Hello ");
    CHECK(stopped);
    CHECK(run_stops({"\n\nUser:"}, {"answer\n", "\n", "Us", "er: more"}) == "answer");
    // A held prefix is released when the text goes another way.
    StopMatcher matcher({"STOP"});
    CHECK(matcher.push("Hello ST").text == "Hello ");
    CHECK(matcher.held_bytes() == 2);
    CHECK(matcher.push("ART").text == "START");
    CHECK(matcher.held_bytes() == 0);
    CHECK(run_stops({"STOP"}, {"no stop here, ST"}) == "no stop here, ST");
    // Earliest occurrence wins, whichever stop string it is.
    StopMatcher both({"world", "lo w"});
    StopResult result = both.push("hello world");
    CHECK(result.stopped);
    CHECK(result.text == "hel");
    CHECK(result.stop_index == 1);
    CHECK(both.push("more").text.empty());
    // A stop at the very start emits nothing; overlapping prefixes are held correctly.
    CHECK(run_stops({"ab"}, {"ab"}).empty());
    CHECK(run_stops({"aab"}, {"a", "a", "a", "b"}) == "a");
    CHECK(run_stops({"", "中文"}, {"说中", "文"}) == "说");
}

}  // namespace
}  // namespace sluice::inference
