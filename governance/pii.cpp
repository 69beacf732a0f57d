#include "governance/pii.h"

#include <algorithm>
#include <cctype>

namespace sluice::governance {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || is_upper(c); }
bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
bool is_email_local(char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool is_email_domain(char c) { return is_alnum(c) || c == '.' || c == '-'; }

bool boundary_before(std::string_view text, std::size_t at) {
    return at == 0 || !is_alnum(text[at - 1]);
}
bool boundary_after(std::string_view text, std::size_t at) {
    return at >= text.size() || !is_alnum(text[at]);
}

// --- e-mail

void find_emails(std::string_view text, std::vector<PiiMatch>& out) {
    for (std::size_t at = text.find('@'); at != std::string_view::npos;
         at = text.find('@', at + 1)) {
        std::size_t begin = at;
        while (begin > 0 && is_email_local(text[begin - 1]) && at - begin <= 64) {
            --begin;
        }
        if (at - begin > 64) {
            continue;  // a local part is at most 64 characters (RFC 5321)
        }
        while (begin < at && (text[begin] == '.' || text[begin] == '-')) {
            ++begin;  // "--john@..." or ".john@": the address starts after them
        }
        if (begin == at || text[at - 1] == '.') {
            continue;
        }
        std::size_t end = at + 1;
        while (end < text.size() && is_email_domain(text[end]) && end - at < 255) {
            ++end;
        }
        while (end > at + 1 && (text[end - 1] == '.' || text[end - 1] == '-')) {
            --end;  // sentence punctuation after the address
        }
        std::string_view domain = text.substr(at + 1, end - at - 1);
        if (domain.empty() || domain.find("..") != std::string_view::npos ||
            domain.front() == '.' || domain.front() == '-') {
            continue;
        }
        std::size_t last_dot = domain.rfind('.');
        if (last_dot == std::string_view::npos) {
            continue;
        }
        std::string_view tld = domain.substr(last_dot + 1);
        bool labels_ok = tld.size() >= 2 && std::all_of(tld.begin(), tld.end(), is_alpha);
        std::size_t label_start = 0;
        for (std::size_t i = 0; i <= domain.size() && labels_ok; ++i) {
            if (i == domain.size() || domain[i] == '.') {
                std::string_view label = domain.substr(label_start, i - label_start);
                labels_ok = !label.empty() && label.front() != '-' && label.back() != '-';
                label_start = i + 1;
            }
        }
        if (labels_ok && (end >= text.size() || text[end] != '@')) {
            out.push_back({PiiType::kEmail, begin, end});
        }
    }
}

// --- runs of digits: phone numbers, card numbers, social security numbers

struct NumberRun {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string digits;
    std::vector<std::size_t> groups;  // lengths of the digit groups
    std::string separators;           // every separator character, in order
    bool plus = false;
    bool parens = false;
};

bool is_run_separator(char c) {
    return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/';
}

// The maximal run starting at `at` (a digit, '+' or '(' at a word boundary). Its end is after
// the last digit; separators are at most two characters between digits.
NumberRun read_run(std::string_view text, std::size_t at) {
    NumberRun run;
    run.begin = at;
    std::size_t i = at;
    if (text[i] == '+') {
        run.plus = true;
        ++i;
    }
    while (i < text.size()) {
        std::size_t group_start = i;
        while (i < text.size() && is_digit(text[i])) {
            run.digits += text[i];
            ++i;
        }
        if (i > group_start) {
            run.groups.push_back(i - group_start);
            run.end = i;
        }
        std::size_t sep_start = i;
        while (i < text.size() && is_run_separator(text[i]) && i - sep_start < 2) {
            ++i;
        }
        if (i == sep_start || i >= text.size() || !is_digit(text[i])) {
            break;
        }
        std::string_view seps = text.substr(sep_start, i - sep_start);
        run.separators += seps;
        run.parens = run.parens || seps.find_first_of("()") != std::string_view::npos;
    }
    if (text[at] == '(' || (run.plus && at + 1 < text.size() && text[at + 1] == '(')) {
        run.parens = true;
    }
    return run;
}

bool only_chars(std::string_view text, std::string_view allowed) {
    return text.find_first_not_of(allowed) == std::string_view::npos;
}

bool is_ssn(std::string_view text, const NumberRun& run) {
    if (run.plus || run.parens || run.groups != std::vector<std::size_t>{3, 2, 4} ||
        run.separators != "--" || text[run.begin] == '(') {
        return false;
    }
    int area = std::stoi(run.digits.substr(0, 3));
    int group = std::stoi(run.digits.substr(3, 2));
    int serial = std::stoi(run.digits.substr(5, 4));
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

bool card_prefix_ok(const std::string& d) {
    const std::size_t n = d.size();
    auto prefix = [&d](std::size_t digits) { return std::stoi(d.substr(0, digits)); };
    int p2 = prefix(2);
    int p3 = prefix(3);
    int p4 = prefix(4);
    int p6 = prefix(6);
    if (d[0] == '4') {
        return n == 13 || n == 16 || n == 19;  // Visa
    }
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) {
        return n == 16;  // Mastercard
    }
    if (p2 == 34 || p2 == 37) {
        return n == 15;  // American Express
    }
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) {
        return n >= 16 && n <= 19;  // Discover
    }
    if (p4 >= 3528 && p4 <= 3589) {
        return n >= 16 && n <= 19;  // JCB
    }
    if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39 || p4 == 3095) {
        return n >= 14 && n <= 19;  // Diners Club
    }
    if (p2 == 62) {
        return n >= 16 && n <= 19;  // UnionPay
    }
    return false;
}

bool is_card(std::string_view text, const NumberRun& run) {
    if (run.plus || run.parens || run.digits.size() < 13 || run.digits.size() > 19 ||
        text[run.begin] == '(') {
        return false;
    }
    // Bare, or grouped by single spaces or by single dashes (not both).
    if (!run.separators.empty() && !only_chars(run.separators, " ") &&
        !only_chars(run.separators, "-")) {
        return false;
    }
    if (run.separators.size() != run.groups.size() - 1) {
        return false;  // a two-character separator
    }
    return card_prefix_ok(run.digits) && luhn_valid(run.digits);
}

bool is_phone(std::string_view text, const NumberRun& run) {
    const std::size_t n = run.digits.size();
    if (run.plus) {
        return n >= 8 && n <= 15;
    }
    if (run.groups.size() < 2) {
        return false;  // a bare run of digits is too ambiguous
    }
    const auto& g = run.groups;
    bool nanp10 = n == 10 && g == std::vector<std::size_t>{3, 3, 4};
    bool nanp11 =
        n == 11 && g == std::vector<std::size_t>{1, 3, 3, 4} && run.digits[0] == '1';
    if (nanp10 || nanp11) {
        char area = run.digits[nanp11 ? 1 : 0];
        return area >= '2' && area <= '9';
    }
    if (run.parens || text[run.begin] == '(') {
        return false;
    }
    return (n == 10 || n == 11) && run.digits[0] == '0' && run.digits[1] != '0' &&
           g.front() >= 2 && g.front() <= 5 && only_chars(run.separators, " -");
}

void find_number_runs(std::string_view text, PiiTypeSet types, std::vector<PiiMatch>& out) {
    std::size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        bool starts = is_digit(c) ||
                      ((c == '+' || c == '(') && i + 1 < text.size() &&
                       (is_digit(text[i + 1]) ||
                        (c == '+' && text[i + 1] == '(' && i + 2 < text.size() &&
                         is_digit(text[i + 2]))));
        if (!starts || !boundary_before(text, i)) {
            ++i;
            while (i < text.size() && is_alnum(text[i]) && is_alnum(text[i - 1])) {
                ++i;  // skip the rest of a word: no run starts inside one
            }
            continue;
        }
        NumberRun run = read_run(text, i);
        i = std::max(run.end, i + 1);
        if (run.digits.empty() || !boundary_after(text, run.end)) {
            continue;
        }
        if ((types & pii_bit(PiiType::kUsSsn)) && is_ssn(text, run)) {
            out.push_back({PiiType::kUsSsn, run.begin, run.end});
        } else if ((types & pii_bit(PiiType::kCreditCard)) && is_card(text, run)) {
            out.push_back({PiiType::kCreditCard, run.begin, run.end});
        } else if ((types & pii_bit(PiiType::kPhone)) && is_phone(text, run)) {
            out.push_back({PiiType::kPhone, run.begin, run.end});
        }
    }
}

// --- IBAN

// Total IBAN length per country (ISO 13616 registry).
int iban_length(std::string_view country) {
    struct Entry {
        const char* code;
        int length;
    };
    static constexpr Entry kLengths[] = {
        {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
        {"BG", 22}, {"BH", 22}, {"BR", 29}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
        {"DE", 22}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
        {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
        {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IS", 26}, {"IT", 27},
        {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LI", 21}, {"LT", 20}, {"LU", 20},
        {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31},
        {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25},
        {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SE", 24}, {"SI", 19}, {"SK", 24},
        {"SM", 27}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VG", 24}, {"XK", 20},
    };
    for (const Entry& e : kLengths) {
        if (country == e.code) {
            return e.length;
        }
    }
    return 0;
}

bool is_iban_char(char c) { return is_upper(c) || is_digit(c); }

void find_ibans(std::string_view text, std::vector<PiiMatch>& out) {
    for (std::size_t i = 0; i + 4 <= text.size(); ++i) {
        if (!is_upper(text[i]) || !is_upper(text[i + 1]) || !is_digit(text[i + 2]) ||
            !is_digit(text[i + 3]) || !boundary_before(text, i)) {
            continue;
        }
        const auto length = static_cast<std::size_t>(iban_length(text.substr(i, 2)));
        if (length == 0) {
            continue;
        }
        std::string compact;
        std::size_t end = i;
        // Bare: `length` IBAN characters, then a boundary.
        while (end < text.size() && is_iban_char(text[end]) && compact.size() < length) {
            compact += text[end++];
        }
        if (compact.size() < length || !boundary_after(text, end)) {
            // Printed: groups of four separated by single spaces, the last one shorter.
            compact.clear();
            end = i;
            while (compact.size() < length && end < text.size()) {
                std::size_t group = 0;
                while (end < text.size() && is_iban_char(text[end]) && group < 4 &&
                       compact.size() < length) {
                    compact += text[end++];
                    ++group;
                }
                if (compact.size() == length) {
                    break;
                }
                if (group != 4 || end + 1 >= text.size() || text[end] != ' ' ||
                    !is_iban_char(text[end + 1])) {
                    break;
                }
                ++end;  // the space between groups
            }
            if (compact.size() != length || !boundary_after(text, end)) {
                continue;
            }
        }
        if (iban_mod97_valid(compact)) {
            out.push_back({PiiType::kIban, i, end});
            i = end - 1;
        }
    }
}

// --- UK National Insurance number

bool nino_prefix_ok(char first, char second) {
    static constexpr std::string_view kBadFirst = "DFIQUV";
    static constexpr std::string_view kBadSecond = "DFIOQUV";
    if (kBadFirst.find(first) != std::string_view::npos ||
        kBadSecond.find(second) != std::string_view::npos) {
        return false;
    }
    std::string prefix{first, second};
    for (const char* bad : {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}) {
        if (prefix == bad) {
            return false;
        }
    }
    return true;
}

// Matches `shape` at `at`: 'L' an upper-case letter, 'd' a digit, 'S' a suffix A-D, ' ' itself.
bool matches_shape(std::string_view text, std::size_t at, std::string_view shape) {
    if (at + shape.size() > text.size()) {
        return false;
    }
    for (std::size_t k = 0; k < shape.size(); ++k) {
        char c = text[at + k];
        bool ok = shape[k] == 'L'   ? is_upper(c)
                  : shape[k] == 'd' ? is_digit(c)
                  : shape[k] == 'S' ? (c >= 'A' && c <= 'D')
                                    : c == shape[k];
        if (!ok) {
            return false;
        }
    }
    return true;
}

void find_ninos(std::string_view text, std::vector<PiiMatch>& out) {
    for (std::size_t i = 0; i + 9 <= text.size(); ++i) {
        if (!is_upper(text[i]) || !boundary_before(text, i) ||
            !nino_prefix_ok(text[i], text[i + 1])) {
            continue;
        }
        for (std::string_view shape : {"LLddddddS", "LL dd dd dd S"}) {
            if (matches_shape(text, i, shape) && boundary_after(text, i + shape.size())) {
                out.push_back({PiiType::kUkNino, i, i + shape.size()});
                break;
            }
        }
    }
}

}  // namespace

std::string_view pii_type_name(PiiType type) {
    switch (type) {
        case PiiType::kEmail: return "email";
        case PiiType::kPhone: return "phone";
        case PiiType::kCreditCard: return "credit_card";
        case PiiType::kIban: return "iban";
        case PiiType::kUsSsn: return "us_ssn";
        case PiiType::kUkNino: return "uk_nino";
    }
    return "unknown";
}

Result<PiiType> parse_pii_type(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (int i = 0; i < kPiiTypeCount; ++i) {
        auto type = static_cast<PiiType>(i);
        if (lower == pii_type_name(type)) {
            return type;
        }
    }
    return invalid_argument("unknown personal data type '" + std::string(text) +
                            "'; known: email, phone, credit_card, iban, us_ssn, uk_nino");
}

std::string_view pii_mask_label(PiiType type) {
    switch (type) {
        case PiiType::kEmail: return "[EMAIL]";
        case PiiType::kPhone: return "[PHONE]";
        case PiiType::kCreditCard: return "[CREDIT_CARD]";
        case PiiType::kIban: return "[IBAN]";
        case PiiType::kUsSsn: return "[US_SSN]";
        case PiiType::kUkNino: return "[UK_NINO]";
    }
    return "[PII]";
}

std::string pii_types_to_string(PiiTypeSet types) {
    std::string out;
    for (int i = 0; i < kPiiTypeCount; ++i) {
        if (types & pii_bit(static_cast<PiiType>(i))) {
            if (!out.empty()) {
                out += ',';
            }
            out += pii_type_name(static_cast<PiiType>(i));
        }
    }
    return out;
}

Result<PiiTypeSet> parse_pii_types(std::string_view text) {
    PiiTypeSet types = 0;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t comma = text.find(',', start);
        std::string_view item = text.substr(start, comma == std::string_view::npos
                                                       ? std::string_view::npos
                                                       : comma - start);
        SLUICE_ASSIGN_OR_RETURN(PiiType type, parse_pii_type(item));
        types |= pii_bit(type);
        if (comma == std::string_view::npos) {
            break;
        }
        start = comma + 1;
    }
    return types;
}

bool luhn_valid(std::string_view digits) {
    if (digits.empty()) {
        return false;
    }
    int sum = 0;
    bool twice = false;
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
        if (!is_digit(*it)) {
            return false;
        }
        int d = *it - '0';
        if (twice) {
            d *= 2;
            d = d > 9 ? d - 9 : d;
        }
        sum += d;
        twice = !twice;
    }
    return sum % 10 == 0;
}

bool iban_mod97_valid(std::string_view iban) {
    if (iban.size() < 5) {
        return false;
    }
    // ISO 13616: move the first four characters to the end, letters become 10..35, and the
    // number modulo 97 must be 1. Computed digit by digit so that no big integer is needed.
    std::string rearranged = std::string(iban.substr(4)) + std::string(iban.substr(0, 4));
    int remainder = 0;
    for (char c : rearranged) {
        if (is_digit(c)) {
            remainder = (remainder * 10 + (c - '0')) % 97;
        } else if (is_upper(c)) {
            int value = c - 'A' + 10;
            remainder = (remainder * 100 + value) % 97;
        } else {
            return false;
        }
    }
    return remainder == 1;
}

std::vector<PiiMatch> find_pii(std::string_view text, PiiTypeSet types) {
    std::vector<PiiMatch> found;
    if (types & pii_bit(PiiType::kEmail)) {
        find_emails(text, found);
    }
    if (types & (pii_bit(PiiType::kPhone) | pii_bit(PiiType::kCreditCard) |
                 pii_bit(PiiType::kUsSsn))) {
        find_number_runs(text, types, found);
    }
    if (types & pii_bit(PiiType::kIban)) {
        find_ibans(text, found);
    }
    if (types & pii_bit(PiiType::kUkNino)) {
        find_ninos(text, found);
    }
    std::sort(found.begin(), found.end(), [](const PiiMatch& a, const PiiMatch& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
    std::vector<PiiMatch> kept;
    for (const PiiMatch& m : found) {
        if (kept.empty() || m.begin >= kept.back().end) {
            kept.push_back(m);
        }
    }
    return kept;
}

std::string mask_pii(std::string_view text, const std::vector<PiiMatch>& matches) {
    std::string out;
    out.reserve(text.size());
    std::size_t at = 0;
    for (const PiiMatch& m : matches) {
        out += text.substr(at, m.begin - at);
        out += pii_mask_label(m.type);
        at = m.end;
    }
    out += text.substr(at);
    return out;
}

PiiCounts count_pii(const std::vector<PiiMatch>& matches) {
    PiiCounts counts{};
    for (const PiiMatch& m : matches) {
        ++counts[static_cast<std::size_t>(m.type)];
    }
    return counts;
}

std::string pii_counts_json(const PiiCounts& counts) {
    std::vector<std::pair<std::string_view, int>> items;
    for (int i = 0; i < kPiiTypeCount; ++i) {
        if (counts[static_cast<std::size_t>(i)] > 0) {
            items.emplace_back(pii_type_name(static_cast<PiiType>(i)),
                               counts[static_cast<std::size_t>(i)]);
        }
    }
    std::sort(items.begin(), items.end());
    std::string out = "{";
    for (const auto& [name, count] : items) {
        if (out.size() > 1) {
            out += ',';
        }
        out += '"';
        out += name;
        out += "\":";
        out += std::to_string(count);
    }
    return out + "}";
}

std::string PiiStreamMasker::push(std::string_view chunk) {
    // The longest match that is not an e-mail address: a grouped 34-character IBAN is 42
    // bytes, a '+' number of 15 digits with two-character separators 44.
    constexpr std::size_t kHoldBack = 48;
    constexpr std::size_t kMaxEmailRun = 256;
    buffer_ += chunk;
    std::size_t email_run = 0;
    while (email_run < buffer_.size() && email_run < kMaxEmailRun &&
           (is_email_local(buffer_[buffer_.size() - 1 - email_run]) ||
            buffer_[buffer_.size() - 1 - email_run] == '@')) {
        ++email_run;
    }
    std::size_t hold = std::min(buffer_.size(), std::max(kHoldBack, email_run));
    return emit(buffer_.size() - hold);
}

std::string PiiStreamMasker::finish() { return emit(buffer_.size()); }

bool PiiStreamMasker::pending_match() const { return !matches().empty(); }

std::vector<PiiMatch> PiiStreamMasker::matches() const {
    const std::size_t offset = context_.size();
    std::vector<PiiMatch> out;
    for (PiiMatch m : find_pii(context_ + buffer_, types_)) {
        if (m.end <= offset) {
            continue;  // already emitted, and was no match then
        }
        // A match reaching back into emitted text cannot happen with the hold-back; should one,
        // the part still held is masked.
        m.begin = m.begin > offset ? m.begin - offset : 0;
        m.end -= offset;
        out.push_back(m);
    }
    return out;
}

std::string PiiStreamMasker::emit(std::size_t cut) {
    // Enough emitted text to see where a run of digits or an address began.
    constexpr std::size_t kContext = 64;
    while (cut > 0 && cut < buffer_.size() &&
           (static_cast<unsigned char>(buffer_[cut]) & 0xC0) == 0x80) {
        --cut;  // never split a UTF-8 sequence between two emitted pieces
    }
    std::vector<PiiMatch> found = matches();
    for (const PiiMatch& m : found) {
        if (m.begin < cut && m.end > cut) {
            cut = m.begin;  // never emit part of a match
        }
    }
    std::vector<PiiMatch> before;
    for (const PiiMatch& m : found) {
        if (m.end <= cut) {
            before.push_back(m);
            ++counts_[static_cast<std::size_t>(m.type)];
        }
    }
    std::string out = mask_pii(std::string_view(buffer_).substr(0, cut), before);
    context_ += buffer_.substr(0, cut);
    if (context_.size() > kContext) {
        context_.erase(0, context_.size() - kContext);
    }
    buffer_.erase(0, cut);
    return out;
}

}  // namespace sluice::governance
