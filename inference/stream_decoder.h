#pragma once
// Streaming detokenization: turns generated token ids into text as they arrive, for answers
// streamed to clients.
//
// StreamDecoder never emits part of a UTF-8 sequence. A token may end in the middle of a
// character (cl100k splits many CJK characters and emoji over two or more tokens); those bytes
// are held back until the character completes. Bytes that can never become valid are emitted
// as U+FFFD at once, and what is still held when generation ends is flushed by finish() as
// U+FFFD, one per maximal invalid subpart (the WHATWG TextDecoder policy). The concatenation of
// every push() and finish() equals Tokenizer::decode_text() of all ids.
//
// StopMatcher cuts generated text at the first occurrence of any stop string, across chunk
// boundaries, without leaking a prefix of it: text that could be the start of a stop string is
// held back until it either completes the stop (and is dropped) or cannot (and is released).
// Stop ids (<|im_end|>, <|endoftext|>) are the engine's business; stop strings are text.
//
// Thread safety: both are owned by one thread (one per generated sequence). StreamDecoder
// borrows the tokenizer, which must outlive it.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

class StreamDecoder {
public:
    // With `skip_special`, special tokens add no text (the concatenation then equals the
    // decoding of the other ids).
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false)
        : tokenizer_(&tokenizer), skip_special_(skip_special) {}

    // Adds one token; returns the text that became complete (often all of it, sometimes
    // nothing). kInvalidArgument for an id held by no token (the decoder is unchanged).
    Result<std::string> push(TokenId id);
    // Ends the stream: the held bytes as U+FFFD; the decoder is empty afterwards.
    std::string finish();
    // Bytes held back waiting for the rest of a character (0..3).
    std::size_t pending_bytes() const { return pending_.size(); }

private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::string pending_;
};

struct StopResult {
    std::string text;       // text safe to emit now
    bool stopped = false;   // a stop string was found; `text` ends just before it
    std::size_t stop_index = 0;  // which stop string, when stopped
};

class StopMatcher {
public:
    // Empty stop strings are ignored.
    explicit StopMatcher(std::vector<std::string> stops);

    // Adds generated text. After a stop, further pushes return nothing.
    StopResult push(std::string_view text);
    // Ends the stream: releases the held text (empty after a stop).
    std::string finish();
    bool stopped() const { return stopped_; }
    // Bytes held back because they could begin a stop string.
    std::size_t held_bytes() const { return held_.size(); }

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace sluice::inference
