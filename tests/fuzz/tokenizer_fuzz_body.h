#pragma once
// The tokenizer fuzz body, shared by the libFuzzer target (tokenizer_fuzz.cpp, clang with
// SLUICE_FUZZ=ON) and the bounded doctest driver (tests/inference/tokenizer_fuzz_test.cpp) that
// every build runs. It feeds arbitrary bytes through encode, decode, streaming and stop
// matching and checks the properties that must hold for any input. Returns an empty string when
// they hold, else what broke.

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inference/detail/utf8.h"
#include "inference/stream_decoder.h"
#include "inference/tokenizer.h"

namespace sluice::inference::fuzz {

inline std::string check_tokenizer_input(const Tokenizer& tokenizer, std::string_view bytes) {
    auto bad = detail::find_invalid_utf8(bytes);
    for (auto mode : {SpecialTokenMode::kOrdinary, SpecialTokenMode::kAllowed}) {
        auto ids = tokenizer.encode(bytes, mode);
        if (bad) {
            if (ids.ok() || ids.status().message() !=
                                "invalid utf-8 at byte " + std::to_string(*bad)) {
                return "invalid utf-8 at byte " + std::to_string(*bad) + " not reported";
            }
            continue;
        }
        if (!ids.ok()) {
            return "valid text failed: " + ids.status().to_string();
        }
        auto decoded = tokenizer.decode(*ids);
        if (!decoded.ok() || *decoded != bytes) {
            return "decode(encode(text)) differs from text";
        }
        // Streaming gives the same text, and never part of a character.
        StreamDecoder stream(tokenizer);
        std::string streamed;
        for (TokenId id : *ids) {
            auto piece = stream.push(id);
            if (!piece.ok() || detail::find_invalid_utf8(*piece)) {
                return "stream decoder emitted an error or invalid utf-8";
            }
            streamed += *piece;
        }
        streamed += stream.finish();
        if (streamed != bytes) {
            return "streamed text differs from text";
        }
    }

    // The bytes as token ids: decoding either works or fails cleanly; streaming agrees with
    // decode_text over the valid ones.
    std::vector<TokenId> ids;
    for (std::size_t pos = 0; pos + 4 <= bytes.size(); pos += 4) {
        std::uint32_t raw = 0;
        std::memcpy(&raw, bytes.data() + pos, 4);
        // Mostly ids in and around the vocabulary, sometimes anything at all.
        ids.push_back(static_cast<TokenId>(raw % 16 == 0 ? raw : raw % 100400));
    }
    auto decoded = tokenizer.decode(ids);
    if (!decoded.ok() && decoded.status().code() != StatusCode::kInvalidArgument) {
        return "decode failed with an unexpected code";
    }
    std::vector<TokenId> valid;
    StreamDecoder stream(tokenizer);
    std::string streamed;
    for (TokenId id : ids) {
        auto piece = stream.push(id);
        if (tokenizer.token_bytes(id).has_value() != piece.ok()) {
            return "stream decoder disagrees with the vocabulary on id " + std::to_string(id);
        }
        if (piece.ok()) {
            valid.push_back(id);
            streamed += *piece;
        }
    }
    streamed += stream.finish();
    if (streamed != *tokenizer.decode_text(valid)) {
        return "streamed text differs from decode_text";
    }

    // Stop matching: the emitted text is a prefix of the input holding no stop string.
    if (!bad && bytes.size() >= 2) {
        std::string stop(bytes.substr(bytes.size() / 2, 2));
        if (!detail::find_invalid_utf8(stop)) {
            StopMatcher matcher({stop});
            std::string out;
            bool stopped = false;
            for (std::size_t pos = 0; pos < bytes.size() && !stopped; pos += 3) {
                StopResult result = matcher.push(bytes.substr(pos, 3));
                out += result.text;
                stopped = result.stopped;
            }
            out += matcher.finish();
            if (!std::string_view(bytes).starts_with(out) || out.find(stop) != std::string::npos ||
                (stopped && out.size() + stop.size() > bytes.size())) {
                return "stop matcher emitted text that is not a stop-free prefix";
            }
        }
    }
    return {};
}

}  // namespace sluice::inference::fuzz
