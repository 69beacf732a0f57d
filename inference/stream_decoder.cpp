#include "inference/stream_decoder.h"

#include <algorithm>

#include "inference/detail/utf8.h"

namespace sluice::inference {

Result<std::string> StreamDecoder::push(TokenId id) {
    if (skip_special_ && tokenizer_->is_special(id)) {
        return std::string();
    }
    auto bytes = tokenizer_->token_bytes(id);
    if (!bytes) {
        return tokenizer_->check_ids(std::span<const TokenId>(&id, 1));
    }
    pending_.append(*bytes);
    // Everything up to a trailing incomplete sequence is final: valid text passes through,
    // invalid subparts become U+FFFD now since no later byte can repair them.
    std::size_t keep = detail::incomplete_utf8_suffix(pending_);
    std::string out;
    std::string_view ready = std::string_view(pending_).substr(0, pending_.size() - keep);
    if (!detail::find_invalid_utf8(ready)) {
        out.assign(ready);
    } else {
        detail::append_utf8_lossy(out, ready);
    }
    pending_.erase(0, pending_.size() - keep);
    return out;
}

std::string StreamDecoder::finish() {
    std::string out;
    detail::append_utf8_lossy(out, pending_);
    pending_.clear();
    return out;
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (std::string& stop : stops) {
        if (!stop.empty()) {
            stops_.push_back(std::move(stop));
        }
    }
}

StopResult StopMatcher::push(std::string_view text) {
    StopResult result;
    if (stopped_) {
        return result;
    }
    held_.append(text);
    // The earliest occurrence of any stop string; on a tie the one listed first.
    std::size_t best = std::string::npos;
    for (std::size_t i = 0; i < stops_.size(); ++i) {
        std::size_t at = held_.find(stops_[i]);
        if (at < best) {
            best = at;
            result.stop_index = i;
        }
    }
    if (best != std::string::npos) {
        result.text = held_.substr(0, best);
        result.stopped = true;
        stopped_ = true;
        held_.clear();
        return result;
    }
    // Hold the longest tail that is a proper prefix of some stop string; release the rest.
    std::size_t hold = 0;
    for (const std::string& stop : stops_) {
        std::size_t longest = std::min(stop.size() - 1, held_.size());
        for (std::size_t n = longest; n > hold; --n) {
            if (std::string_view(held_).substr(held_.size() - n) ==
                std::string_view(stop).substr(0, n)) {
                hold = n;
                break;
            }
        }
    }
    result.text = held_.substr(0, held_.size() - hold);
    held_.erase(0, held_.size() - hold);
    return result;
}

std::string StopMatcher::finish() {
    std::string out = std::move(held_);
    held_.clear();
    return out;
}

}  // namespace sluice::inference
