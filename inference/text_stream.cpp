#include "inference/text_stream.h"

namespace sluice::inference {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop_strings,
                       std::function<void(std::string_view)> on_text)
    : tokenizer_(tokenizer),
      decoder_(tokenizer),
      stop_(std::move(stop_strings)),
      on_text_(std::move(on_text)) {}

bool TextStream::on_token(int32_t id) {
    if (stop_.stopped()) {
        return true;
    }
    if (tokenizer_.is_special(id)) {
        // End-of-turn and other control tokens end or shape the turn; they are not its text.
        return false;
    }
    auto piece = decoder_.push(id);
    // A sampled id always names a token of the model's vocabulary, but padding rows exist; a
    // random or damaged model may pick one, and the reader sees the replacement character.
    StopResult result = stop_.push(piece.ok() ? *piece : std::string("\xEF\xBF\xBD"));
    emit(result.text);
    return result.stopped;
}

void TextStream::finish() {
    if (stop_.stopped()) {
        return;
    }
    StopResult tail = stop_.push(decoder_.finish());
    emit(tail.text);
    if (!tail.stopped) {
        emit(stop_.finish());
    }
}

void TextStream::emit(std::string_view text) {
    if (text.empty()) {
        return;
    }
    text_.append(text);
    if (on_text_) {
        on_text_(text);
    }
}

}  // namespace sluice::inference
