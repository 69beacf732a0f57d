#pragma once
// Turns text into index terms for the lexical ranker: split into words, lower-case, drop stop
// words, stem with the Snowball stemmer of the index's language (libstemmer).
//
// The text is first normalised the way Lucene's ICU analysis does (NFKC with Unicode case folding,
// default-ignorable code points such as soft hyphens removed; utf8proc), then split: words are
// maximal runs of letters, combining marks and numbers (Unicode categories L, M, N); everything
// else (punctuation in any script, typographic quotes and dashes, symbols, spaces) separates
// them. Han ideographs, Hiragana and Katakana, written without spaces, are one term per
// character, as Lucene's StandardTokenizer makes them. Thai, Lao, Khmer and Myanmar runs stay
// whole (they need dictionary segmentation). A possessive "'s" (straight or typographic
// apostrophe) is dropped. Bytes that are not valid UTF-8 separate words.
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
    // The version of the analysis. Indexes keep the terms of their chunks and record the version
    // that made them; an index made by another version is re-analyzed when it opens (Index).
    // 1: ASCII-only lower-casing, non-ASCII bytes part of words. 2: the analysis above.
    static constexpr int kVersion = 2;

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
