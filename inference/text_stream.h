#pragma once
// TextStream: turns generated token ids into text as they arrive, for the user to see, and ends
// generation at stop strings. It joins the streaming decoder (never a partial UTF-8 character)
// and the stop matcher (a stop string matched across token boundaries, its prefix never shown)
// behind the generator's TextStopMatcher seam.
//
//   TextStream stream(tokenizer, {"\n\n"}, [&](std::string_view text) { out << text; });
//   request.text_stop = &stream;
//   generate(...);
//   stream.finish();  // flushes held text unless a stop string ended the stream
//
// Thread safety: owned by the thread that runs generation.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "inference/generator.h"
#include "inference/stream_decoder.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

class TextStream final : public TextStopMatcher {
public:
    // `on_text` receives each piece of text that is safe to show (may be called with nothing
    // held back at the end by finish()). `tokenizer` is borrowed and must outlive the stream.
    TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
               std::function<void(std::string_view)> on_text);

    // TextStopMatcher: decodes `id`; true once a stop string has been seen. Special tokens (the
    // end-of-turn marker) are not shown. An id held by no token is shown as U+FFFD.
    bool on_token(int32_t id) override;

    // Ends the stream: emits what was held back (nothing after a stop string).
    void finish();

    bool stopped() const { return stop_.stopped(); }
    // Everything emitted so far.
    const std::string& text() const { return text_; }

private:
    void emit(std::string_view text);

    const Tokenizer& tokenizer_;
    StreamDecoder decoder_;
    StopMatcher stop_;
    std::function<void(std::string_view)> on_text_;
    std::string text_;
};

}  // namespace sluice::inference
