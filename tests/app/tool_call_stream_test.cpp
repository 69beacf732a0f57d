#include "app/tool_call_stream.h"

#include <doctest/doctest.h>

#include <map>
#include <random>

#include <nlohmann/json.hpp>

namespace sluice::app {
namespace {

const std::vector<inference::ToolDefinition> kTools = {{"search", "", {}}, {"lookup", "", {}}};

// What a client assembles from the pieces: content, and per call index its name and the
// concatenated argument fragments.
struct Assembled {
    std::string content;
    std::map<int, std::pair<std::string, std::string>> calls;
    std::map<int, std::string> ids;
    int first_deltas = 0;
};

void add(Assembled& out, const ToolStreamPiece& piece) {
    out.content += piece.content;
    for (const ToolCallDelta& delta : piece.calls) {
        if (delta.first) {
            ++out.first_deltas;
            CHECK(delta.arguments.empty());
            CHECK(delta.id.rfind("call_", 0) == 0);
            CHECK(out.calls.count(delta.index) == 0);
            out.calls[delta.index].first = delta.name;
            out.ids[delta.index] = delta.id;
        } else {
            REQUIRE(out.calls.count(delta.index) == 1);  // never before its first delta
            out.calls[delta.index].second += delta.arguments;
        }
    }
}

// Streams `text` cut into random pieces of 1..max_piece bytes.
Assembled stream(const std::string& text, bool parallel, unsigned seed, size_t max_piece) {
    ToolCallStreamer streamer(kTools, parallel);
    std::mt19937 rng(seed);
    Assembled out;
    for (size_t at = 0; at < text.size();) {
        const size_t n = std::min(text.size() - at, 1 + rng() % max_piece);
        add(out, streamer.push(std::string_view(text).substr(at, n)));
        at += n;
    }
    add(out, streamer.finish());
    CHECK(streamer.calls() == static_cast<int>(out.calls.size()));
    return out;
}

TEST_CASE("streamed calls assemble to what the whole answer holds, however cut") {
    const std::string text =
        "Let me look.\n<tool_call>{\"name\": \"search\", \"arguments\": {\"query\": \"a {b} "
        "\\\"c\\\"\", \"k\": [1, {\"x\": 2}]}}</tool_call>\n"
        "<tool_call>{\"name\":\"lookup\",\"arguments\":{}}</tool_call>";
    const ToolCallAnswer whole = read_tool_calls(text, kTools, true);
    CHECK(whole.content == "Let me look.");
    REQUIRE(whole.calls.size() == 2);
    CHECK(whole.calls[0].name == "search");
    CHECK(nlohmann::json::parse(whole.calls[0].arguments) ==
          nlohmann::json{{"query", "a {b} \"c\""}, {"k", {1, {{"x", 2}}}}});
    CHECK(whole.calls[1].name == "lookup");
    CHECK(whole.calls[1].arguments == "{}");
    CHECK(whole.calls[0].id != whole.calls[1].id);
    for (unsigned seed = 0; seed < 200; ++seed) {
        Assembled out = stream(text, true, seed, 1 + seed % 13);
        CHECK(out.content == "Let me look.\n");
        REQUIRE(out.calls.size() == 2);
        CHECK(out.first_deltas == 2);
        CHECK(out.ids[0] != out.ids[1]);
        for (int i = 0; i < 2; ++i) {
            CHECK(out.calls[i].first == whole.calls[static_cast<size_t>(i)].name);
            CHECK(out.calls[i].second == whole.calls[static_cast<size_t>(i)].arguments);
        }
    }
}

TEST_CASE("a call cut short comes back the same whole and streamed: its arguments so far") {
    // What max_tokens leaves: a complete call, then one stopped inside its arguments.
    const std::string text =
        "<tool_call>{\"name\": \"search\", \"arguments\": {\"q\": 1}}</tool_call>\n"
        "<tool_call>{\"name\": \"lookup\", \"arguments\": {\"q\": \"par";
    const ToolCallAnswer whole = read_tool_calls(text, kTools, true);
    CHECK(whole.content.empty());
    REQUIRE(whole.calls.size() == 2);
    CHECK(whole.calls[0].arguments == "{\"q\": 1}");
    CHECK(whole.calls[1].name == "lookup");
    CHECK(whole.calls[1].arguments == "{\"q\": \"par");
    for (unsigned seed = 0; seed < 50; ++seed) {
        Assembled out = stream(text, true, seed, 1 + seed % 7);
        CHECK(out.content.empty());
        REQUIRE(out.calls.size() == 2);
        CHECK(out.calls[1].second == whole.calls[1].arguments);
    }
    // Cut inside the second call's header: that one is content, the first call stands.
    const std::string in_header =
        "<tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>\n<tool_call>{\"na";
    const ToolCallAnswer header_cut = read_tool_calls(in_header, kTools, true);
    REQUIRE(header_cut.calls.size() == 1);
    CHECK(header_cut.content == "<tool_call>{\"na");
    CHECK(stream(in_header, true, 9, 4).content == header_cut.content);
}

TEST_CASE("text without calls is all content, untrimmed") {
    const ToolCallAnswer answer = read_tool_calls("Paris.\n", kTools, true);
    CHECK(answer.calls.empty());
    CHECK(answer.content == "Paris.\n");
}

TEST_CASE("a partial marker is held back and released when it is not a call") {
    ToolCallStreamer streamer(kTools, true);
    auto piece = streamer.push("a <tool_ca");
    CHECK(piece.content == "a ");
    piece = streamer.push("t> b");
    CHECK(piece.content == "<tool_cat> b");
    CHECK(piece.calls.empty());
    CHECK(streamer.finish().empty());
}

TEST_CASE("an unknown tool or a malformed header is content, whole") {
    const std::string unknown =
        "x <tool_call>{\"name\": \"delete_all\", \"arguments\": {}}</tool_call>";
    Assembled out = stream(unknown, true, 7, 5);
    CHECK(out.calls.empty());
    CHECK(out.content == unknown);

    const std::string cut = "y <tool_call>{\"name\": \"sea";  // ends inside the header
    out = stream(cut, true, 3, 4);
    CHECK(out.calls.empty());
    CHECK(out.content == cut);
}

TEST_CASE("with parallel tool calls off only the first call is streamed") {
    const std::string text =
        "<tool_call>{\"name\": \"search\", \"arguments\": {\"q\": 1}}</tool_call>\n"
        "<tool_call>{\"name\": \"lookup\", \"arguments\": {\"q\": 2}}</tool_call>";
    Assembled out = stream(text, false, 11, 6);
    REQUIRE(out.calls.size() == 1);
    CHECK(out.calls[0].first == "search");
    CHECK(nlohmann::json::parse(out.calls[0].second) == nlohmann::json{{"q", 1}});
    CHECK(out.content.empty());
}

TEST_CASE("arguments given as a JSON string are sent decoded") {
    const std::string text =
        "<tool_call>{\"name\": \"search\", \"arguments\": \"{\\\"q\\\": \\\"x\\\"}\"}</tool_call>";
    Assembled out = stream(text, true, 5, 3);
    REQUIRE(out.calls.size() == 1);
    CHECK(nlohmann::json::parse(out.calls[0].second) == nlohmann::json{{"q", "x"}});
}

}  // namespace
}  // namespace sluice::app
