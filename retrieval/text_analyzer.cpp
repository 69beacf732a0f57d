#include "retrieval/text_analyzer.h"

#include <libstemmer.h>

#include <algorithm>

namespace sluice::retrieval {
namespace {

// English: the stop set of Lucene's EnglishAnalyzer, which the published BM25 baselines on
// BEIR (Elasticsearch, Anserini) index with. Others: the most frequent function words of each
// language, kept short so that they never remove content words.
const std::vector<std::string_view> kEnglish = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
    "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
    "there", "these", "they", "this", "to", "was", "will", "with"};
const std::vector<std::string_view> kGerman = {
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem",
    "einen", "und", "oder", "aber", "in", "im", "zu", "zum", "zur", "mit", "von", "auf",
    "für", "ist", "sind", "war", "nicht", "als", "auch", "an", "am", "es", "sich", "dass"};
const std::vector<std::string_view> kFrench = {
    "le", "la", "les", "un", "une", "des", "du", "de", "et", "ou", "mais", "en", "dans",
    "au", "aux", "pour", "par", "sur", "avec", "est", "sont", "pas", "ne", "que", "qui",
    "ce", "cette", "ces", "il", "elle", "se", "sa", "son", "ses", "l", "d"};
const std::vector<std::string_view> kSpanish = {
    "el", "la", "los", "las", "un", "una", "unos", "unas", "y", "o", "pero", "en", "de",
    "del", "al", "para", "por", "con", "es", "son", "no", "que", "se", "su", "sus", "lo",
    "como", "más", "este", "esta", "estos", "estas"};
const std::vector<std::string_view> kNone = {};

bool is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

}  // namespace

const std::vector<std::string_view>& stop_words_for(std::string_view language) {
    if (language == "english" || language == "porter") {
        return kEnglish;
    }
    if (language == "german") {
        return kGerman;
    }
    if (language == "french") {
        return kFrench;
    }
    if (language == "spanish") {
        return kSpanish;
    }
    return kNone;
}

std::vector<std::string> TextAnalyzer::languages() {
    std::vector<std::string> out;
    for (const char** name = sb_stemmer_list(); *name != nullptr; ++name) {
        out.emplace_back(*name);
    }
    return out;
}

Result<std::unique_ptr<TextAnalyzer>> TextAnalyzer::create(const std::string& language) {
    if (language != "none") {
        auto known = languages();
        if (std::find(known.begin(), known.end(), language) == known.end()) {
            std::string list;
            for (const auto& name : known) {
                list += (list.empty() ? "" : ", ") + name;
            }
            return invalid_argument("unknown analyzer language '" + language +
                                    "', expected none or one of: " + list);
        }
    }
    std::unordered_set<std::string> stop;
    for (auto word : stop_words_for(language)) {
        stop.emplace(word);
    }
    return std::make_unique<TextAnalyzer>(Tag{}, language, std::move(stop));
}

TextAnalyzer::TextAnalyzer(Tag, std::string language, std::unordered_set<std::string> stop_words)
    : language_(std::move(language)), stop_words_(std::move(stop_words)) {}

TextAnalyzer::~TextAnalyzer() = default;

void TextAnalyzer::StemmerDeleter::operator()(sb_stemmer* stemmer) const {
    sb_stemmer_delete(stemmer);
}

TextAnalyzer::StemmerPtr TextAnalyzer::acquire() const {
    {
        std::lock_guard lock(pool_mutex_);
        if (!pool_.empty()) {
            StemmerPtr stemmer = std::move(pool_.back());
            pool_.pop_back();
            return stemmer;
        }
    }
    StemmerPtr stemmer(sb_stemmer_new(language_.c_str(), "UTF_8"));
    // create() checked the name; a null here means libstemmer is out of memory.
    SLUICE_CHECK(stemmer != nullptr, "sb_stemmer_new failed for '" + language_ + "'");
    return stemmer;
}

void TextAnalyzer::release(StemmerPtr stemmer) const {
    std::lock_guard lock(pool_mutex_);
    pool_.push_back(std::move(stemmer));
}

std::vector<std::string> TextAnalyzer::analyze(std::string_view text) const {
    std::vector<std::string> terms;
    StemmerPtr stemmer = language_ == "none" ? nullptr : acquire();
    std::string word;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && !is_word_byte(static_cast<unsigned char>(text[i]))) {
            ++i;
        }
        std::size_t begin = i;
        while (i < text.size() && is_word_byte(static_cast<unsigned char>(text[i]))) {
            ++i;
        }
        if (i == begin) {
            break;
        }
        // "patient's": the tokenizer split at the apostrophe; the lone "s" carries nothing.
        if (i - begin == 1 && (text[begin] == 's' || text[begin] == 'S') && begin > 0 &&
            (text[begin - 1] == '\'')) {
            continue;
        }
        word.assign(text.substr(begin, i - begin));
        for (char& c : word) {
            if (c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
        }
        if (stop_words_.count(word) != 0) {
            continue;
        }
        if (stemmer) {
            const sb_symbol* stemmed = sb_stemmer_stem(
                stemmer.get(), reinterpret_cast<const sb_symbol*>(word.data()),
                static_cast<int>(word.size()));
            if (stemmed != nullptr) {
                int length = sb_stemmer_length(stemmer.get());
                word.assign(reinterpret_cast<const char*>(stemmed), static_cast<std::size_t>(length));
            }
        }
        terms.push_back(word);
    }
    if (stemmer) {
        release(std::move(stemmer));
    }
    return terms;
}

}  // namespace sluice::retrieval
