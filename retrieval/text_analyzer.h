#pragma once
// Turns text into index terms for the lexical ranker: split into words, lower-case, drop stop
// words, stem with the Snowball stemmer of the index's language (libstemmer).
//
// Words are maximal runs of ASCII letters and digits and of any non-ASCII UTF-8 bytes (so words
// in other scripts stay whole); an English possessive "'s" is dropped. Only ASCII letters are
// lower-cased: Unicode case folding needs tables this module does not carry, and the stemmers
// accept mixed case.
//
// Thread safety: thread-safe. Snowball stemmers are not, so each call borrows one from a pool.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/result.h"

struct sb_stemmer;

namespace sluice::retrieval {

class TextAnalyzer {
public:
    // `language` is a Snowball algorithm name ("english", "german", "french", "porter"...) or
    // "none" for no stemming and no stop words. kInvalidArgument names the languages on offer.
    static Result<std::unique_ptr<TextAnalyzer>> create(const std::string& language);

    ~TextAnalyzer();
    TextAnalyzer(const TextAnalyzer&) = delete;
    TextAnalyzer& operator=(const TextAnalyzer&) = delete;

    // The terms of `text`, in order, duplicates kept.
    std::vector<std::string> analyze(std::string_view text) const;

    const std::string& language() const { return language_; }

    // Snowball's algorithm names, from libstemmer.
    static std::vector<std::string> languages();

    struct Tag {};
    TextAnalyzer(Tag, std::string language, std::unordered_set<std::string> stop_words);

private:
    struct StemmerDeleter {
        void operator()(sb_stemmer* stemmer) const;
    };
    using StemmerPtr = std::unique_ptr<sb_stemmer, StemmerDeleter>;

    StemmerPtr acquire() const;
    void release(StemmerPtr stemmer) const;

    std::string language_;
    std::unordered_set<std::string> stop_words_;
    mutable std::mutex pool_mutex_;
    mutable std::vector<StemmerPtr> pool_;  // GUARDED_BY(pool_mutex_)
};

// The stop words used for `language` (empty for languages without a list).
const std::vector<std::string_view>& stop_words_for(std::string_view language);

}  // namespace sluice::retrieval
