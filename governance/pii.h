#pragma once
// Detectors of personal data in text, and masking, for the guardrails of model endpoints
// (guardrails.h). Pure functions over UTF-8 text; matches are byte ranges. ASCII letters and
// digits form words; any other byte (punctuation, spaces, non-ASCII) is a boundary.
//
// What each detector accepts (and so what it does not):
//  - email: local@domain.tld — local part of [A-Za-z0-9._%+-] (not starting or ending with
//    '.'), a domain of labels of [A-Za-z0-9-] (no label starting or ending with '-') and a
//    top-level domain of two or more letters. A trailing '.' or '-' ends a sentence, not the
//    address.
//  - phone: "+" and 8-15 digits in groups (E.164 as written: "+44 20 7946 0958",
//    "+1 (555) 123-4567"); North American numbers grouped 3-3-4 with an optional leading 1
//    ("(555) 123-4567", "555-123-4567", "1-555-123-4567", "555.123.4567"; area code 2-9xx);
//    national numbers with a trunk 0 and 10-11 digits in two or more groups ("020 7946 0958").
//    A bare run of digits without '+' or grouping is not a phone number.
//  - credit_card: 13-19 digits, bare or grouped by single spaces or dashes, passing the Luhn
//    check, with an issuer prefix of Visa, Mastercard, American Express, Discover, JCB, Diners
//    Club or UnionPay.
//  - iban: country code of a country in the IBAN registry, two check digits and the country's
//    BBAN length, bare or printed in groups of four; the ISO 13616 mod-97 check must hold.
//  - us_ssn: ddd-dd-dddd with area 001-899 but not 666, group 01-99, serial 0001-9999.
//  - uk_nino: UK National Insurance number, two prefix letters (not D, F, I, Q, U, V first; not
//    D, F, I, O, Q, U, V second; not BG, GB, KN, NK, NT, TN, ZZ), six digits and a suffix A-D;
//    bare or spaced "AB 12 34 56 C".
//
// Thread safety: free functions are pure; a PiiStreamMasker is owned by one thread.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace sluice::governance {

enum class PiiType : std::uint8_t { kEmail, kPhone, kCreditCard, kIban, kUsSsn, kUkNino };
inline constexpr int kPiiTypeCount = 6;

using PiiTypeSet = std::uint32_t;
constexpr PiiTypeSet pii_bit(PiiType type) { return PiiTypeSet{1} << static_cast<int>(type); }
inline constexpr PiiTypeSet kAllPiiTypes = (PiiTypeSet{1} << kPiiTypeCount) - 1;

// "email", "phone", "credit_card", "iban", "us_ssn", "uk_nino".
std::string_view pii_type_name(PiiType type);
// Accepts the names above, case-insensitively. kInvalidArgument naming the text otherwise.
Result<PiiType> parse_pii_type(std::string_view text);
// "[EMAIL]", "[PHONE]", "[CREDIT_CARD]", "[IBAN]", "[US_SSN]", "[UK_NINO]".
std::string_view pii_mask_label(PiiType type);
// "email,iban" for a set; "" for none. Parses the same form back.
std::string pii_types_to_string(PiiTypeSet types);
Result<PiiTypeSet> parse_pii_types(std::string_view text);

struct PiiMatch {
    PiiType type = PiiType::kEmail;
    std::size_t begin = 0;  // byte offsets into the text
    std::size_t end = 0;
};

// Every match of the selected types, ordered by position and not overlapping (where two
// detectors claim overlapping text, the earlier and then the longer match wins).
std::vector<PiiMatch> find_pii(std::string_view text, PiiTypeSet types = kAllPiiTypes);

// The text with each match replaced by its label. `matches` as find_pii returns them.
std::string mask_pii(std::string_view text, const std::vector<PiiMatch>& matches);

// How many matches of each type (indexed by PiiType).
using PiiCounts = std::array<int, kPiiTypeCount>;
PiiCounts count_pii(const std::vector<PiiMatch>& matches);
// {"credit_card":1,"email":2}: types with a count, in name order; never the matched text.
std::string pii_counts_json(const PiiCounts& counts);

// The checks behind the detectors, for tests and callers that validate single values.
bool luhn_valid(std::string_view digits);     // digits only
bool iban_mod97_valid(std::string_view iban);  // compact, upper case: "DE89370400440532013000"

// Masks a stream of text chunks (a streamed model answer): push() returns the text that is
// safe to emit now, holding back a tail that could still be the start of a match (up to 48
// bytes, or the run of e-mail characters at the end, at most 256 bytes); finish() masks and
// returns the rest. The concatenation of what push() and finish() return equals mask_pii() of
// the whole text as long as no single match is longer than the hold-back.
class PiiStreamMasker {
public:
    explicit PiiStreamMasker(PiiTypeSet types = kAllPiiTypes) : types_(types) {}

    std::string push(std::string_view chunk);
    std::string finish();

    // Matches in the text pushed so far, including the held-back tail.
    bool pending_match() const;
    const PiiCounts& counts() const { return counts_; }
    std::size_t held() const { return buffer_.size(); }

private:
    std::string emit(std::size_t cut);

    // The matches in buffer_, found with the emitted text before it as context (a number run
    // that began in emitted text is still one run), with offsets into buffer_.
    std::vector<PiiMatch> matches() const;

    PiiTypeSet types_;
    std::string context_;  // the last bytes emitted, unmasked; never emitted again
    std::string buffer_;   // pushed but not yet emitted
    PiiCounts counts_{};
};

}  // namespace sluice::governance
