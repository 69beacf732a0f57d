#include "retrieval/text_analyzer.h"

#include <libstemmer.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

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
const std::vector<std::string_view> kItalian = {
    "il",  "lo",    "la", "i",  "gli",  "le",  "un", "uno",  "una",   "di",     "del",    "della",
    "dei", "delle", "a",  "al", "alla", "da",  "in", "nel",  "nella", "con",    "su",     "per",
    "tra", "e",     "o",  "ma", "che",  "non", "è",  "sono", "come",  "questo", "questa", "si"};
const std::vector<std::string_view> kPortuguese = {
    "o",   "a",   "os", "as", "um",  "uma", "uns",  "umas", "de",  "do", "da", "dos",
    "das", "em",  "no", "na", "nos", "nas", "por",  "para", "com", "e",  "ou", "mas",
    "que", "não", "é",  "se", "ao",  "à",   "como", "mais", "seu", "sua"};
const std::vector<std::string_view> kDutch = {
    "de",   "het",  "een", "en",  "of",  "maar", "van", "in",   "op",  "te",   "aan", "met",
    "voor", "door", "dat", "die", "dit", "deze", "is",  "zijn", "was", "niet", "als", "ook",
    "er",   "om",   "bij", "tot", "uit", "naar", "hij", "zij",  "ze",  "wij",  "we"};
const std::vector<std::string_view> kSwedish = {
    "och", "i",   "att",  "det", "som", "en",   "ett",   "på",  "är",  "av",
    "för", "med", "till", "den", "de",  "inte", "om",    "har", "var", "jag",
    "han", "hon", "vi",   "men", "så",  "från", "eller", "vid", "sig", "när"};
const std::vector<std::string_view> kDanish = {
    "og",  "i",   "at",  "det", "som", "en",   "et",    "på",  "er",  "af",
    "for", "med", "til", "den", "de",  "ikke", "om",    "har", "var", "jeg",
    "han", "hun", "vi",  "men", "så",  "fra",  "eller", "ved", "sig", "når"};
const std::vector<std::string_view> kNorwegian = {
    "og",  "i",   "at",  "det", "som", "en",   "et",    "på",  "er",  "av",
    "for", "med", "til", "den", "de",  "ikke", "om",    "har", "var", "jeg",
    "han", "hun", "vi",  "men", "så",  "fra",  "eller", "ved", "seg", "når"};
const std::vector<std::string_view> kRussian = {
    "и",   "в",      "во",  "не",  "что",  "он",  "на", "я",    "с",   "со",  "как", "а",  "то",
    "все", "она",    "так", "его", "но",   "да",  "ты", "к",    "у",   "же",  "вы",  "за", "бы",
    "по",  "только", "ее",  "мне", "было", "вот", "от", "меня", "еще", "нет", "о",   "из", "ему"};
const std::vector<std::string_view> kNone = {};

// NFKC, Unicode case folding and removal of default-ignorable code points (soft hyphens, zero-width
// joiners), as Lucene's ICUNormalizer2Filter applies nfkc_cf: "ﬁ" becomes "fi", full-width
// letters their ASCII forms, "Straße" "strasse", a decomposed "é" the composed one.
constexpr utf8proc_option_t kFoldOptions = static_cast<utf8proc_option_t>(
    UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);

bool is_ascii(std::string_view text) {
    for (char c : text) {
        if (static_cast<unsigned char>(c) >= 0x80) {
            return false;
        }
    }
    return true;
}

// `text` with every byte that does not start a valid UTF-8 sequence replaced by a space, so
// that a stray byte separates words instead of failing the whole text.
std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    auto size = static_cast<utf8proc_ssize_t>(text.size());
    utf8proc_ssize_t i = 0;
    while (i < size) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t n = utf8proc_iterate(bytes + i, size - i, &cp);
        if (n <= 0) {
            out.push_back(' ');
            ++i;
            continue;
        }
        out.append(text.substr(static_cast<std::size_t>(i), static_cast<std::size_t>(n)));
        i += n;
    }
    return out;
}

// The folded text (see kFoldOptions); ASCII text is returned as it is (NFKC leaves ASCII
// alone and analyze() lower-cases ASCII letters itself).
std::string fold(std::string_view text) {
    if (is_ascii(text)) {
        return std::string(text);
    }
    std::string valid = valid_utf8(text);
    utf8proc_uint8_t* mapped = nullptr;
    utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                     static_cast<utf8proc_ssize_t>(valid.size()), &mapped, kFoldOptions);
    if (n < 0) {
        // Only an allocation failure is left once the input is valid UTF-8.
        std::free(mapped);
        return valid;
    }
    std::string out(reinterpret_cast<const char*>(mapped), static_cast<std::size_t>(n));
    std::free(mapped);
    return out;
}

// Scripts written without spaces between words whose characters Lucene's StandardTokenizer
// (UAX #29) makes one token each: Han ideographs, Hiragana and Katakana.
bool is_ideographic(utf8proc_int32_t cp) {
    return (cp >= 0x3040 && cp <= 0x30FF) ||  // Hiragana, Katakana
           (cp >= 0x31F0 && cp <= 0x31FF) ||  // Katakana phonetic extensions
           (cp >= 0x3400 && cp <= 0x4DBF) ||  // CJK extension A
           (cp >= 0x4E00 && cp <= 0x9FFF) ||  // CJK unified ideographs
           (cp >= 0xF900 && cp <= 0xFAFF) ||  // CJK compatibility ideographs
           (cp >= 0x20000 && cp <= 0x3134F);  // CJK extensions B-G
}

bool is_apostrophe(utf8proc_int32_t cp) { return cp == '\'' || cp == 0x2019 || cp == 0x02BC; }

enum class CharKind { kSeparator, kWord, kIdeograph };

CharKind kind_of(utf8proc_int32_t cp) {
    if (cp < 0x80) {
        auto c = static_cast<unsigned char>(cp);
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                   ? CharKind::kWord
                   : CharKind::kSeparator;
    }
    if (is_ideographic(cp)) {
        return CharKind::kIdeograph;
    }
    // Letters (L*), combining marks (M*) and numbers (N*) make words; punctuation, symbols,
    // spaces and controls separate them.
    const utf8proc_category_t category = utf8proc_category(cp);
    return category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_NO
               ? CharKind::kWord
               : CharKind::kSeparator;
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
    if (language == "italian") {
        return kItalian;
    }
    if (language == "portuguese") {
        return kPortuguese;
    }
    if (language == "dutch") {
        return kDutch;
    }
    if (language == "swedish") {
        return kSwedish;
    }
    if (language == "danish") {
        return kDanish;
    }
    if (language == "norwegian") {
        return kNorwegian;
    }
    if (language == "russian") {
        return kRussian;
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
    auto emit = [&](std::string word) {
        for (char& c : word) {
            if (c >= 'A' && c <= 'Z') {
                c = static_cast<char>(c - 'A' + 'a');
            }
        }
        if (stop_words_.count(word) != 0) {
            return;
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
        terms.push_back(std::move(word));
    };
    const std::string folded = fold(text);
    const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(folded.data());
    const auto size = static_cast<utf8proc_ssize_t>(folded.size());
    utf8proc_ssize_t i = 0;
    utf8proc_ssize_t word_begin = -1;
    bool after_apostrophe = false;  // the separator just before the current word
    bool last_was_apostrophe = false;
    auto end_word = [&](utf8proc_ssize_t end) {
        if (word_begin < 0) {
            return;
        }
        std::string_view word(folded.data() + word_begin,
                              static_cast<std::size_t>(end - word_begin));
        // "patient's": the split at the apostrophe leaves a lone "s" that carries nothing.
        if (!(after_apostrophe && (word == "s" || word == "S"))) {
            emit(std::string(word));
        }
        word_begin = -1;
    };
    while (i < size) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t n = utf8proc_iterate(bytes + i, size - i, &cp);
        if (n <= 0) {  // fold() left valid UTF-8; stay safe if it did not
            end_word(i);
            last_was_apostrophe = false;
            ++i;
            continue;
        }
        switch (kind_of(cp)) {
            case CharKind::kWord:
                if (word_begin < 0) {
                    word_begin = i;
                    after_apostrophe = last_was_apostrophe;
                }
                break;
            case CharKind::kIdeograph:
                end_word(i);
                emit(std::string(
                    folded.substr(static_cast<std::size_t>(i), static_cast<std::size_t>(n))));
                last_was_apostrophe = false;
                break;
            case CharKind::kSeparator:
                end_word(i);
                last_was_apostrophe = is_apostrophe(cp);
                break;
        }
        i += n;
    }
    end_word(size);
    if (stemmer) {
        release(std::move(stemmer));
    }
    return terms;
}

}  // namespace sluice::retrieval
