#include "governance/detail/audit_json.h"

#include <array>
#include <charconv>
#include <cstring>

#include "governance/detail/crypto.h"

namespace sluice::governance::detail {
namespace {

// Bytes that JSON requires escaped: the quote, the backslash and control characters.
constexpr std::array<bool, 256> kNeedsEscape = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 0x20; ++c) {
        table[static_cast<std::size_t>(c)] = true;
    }
    table['"'] = true;
    table['\\'] = true;
    return table;
}();

// True when the 8 bytes of `word` hold one that JSON requires escaped: below 0x20, '"' or '\\'.
// "Determine if a word has a byte less than n" and "... equal to n" (Sean Eron Anderson, Bit
// Twiddling Hacks) test the 8 at once; exact for the question whether there is any such byte.
bool word_needs_escape(std::uint64_t word) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
    auto has_zero = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
    const std::uint64_t below_space = (word - kOnes * 0x20) & ~word & kHighs;
    return (below_space | has_zero(word ^ (kOnes * '"')) | has_zero(word ^ (kOnes * '\\'))) != 0;
}

// True when `text` holds a byte that JSON requires escaped, 8 bytes at a time: audit texts
// almost never hold one, and a byte at a time cost the committer more than the hash.
bool needs_escape(std::string_view text) {
    std::size_t i = 0;
    for (; i + 8 <= text.size(); i += 8) {
        std::uint64_t word;
        std::memcpy(&word, text.data() + i, 8);
        if (word_needs_escape(word)) {
            return true;
        }
    }
    if (i == text.size()) {
        return false;
    }
    // The last few bytes, padded with a byte that needs no escape.
    char tail[8];
    std::memset(tail, 'a', sizeof(tail));
    std::memcpy(tail, text.data() + i, text.size() - i);
    std::uint64_t word;
    std::memcpy(&word, tail, 8);
    return word_needs_escape(word);
}

// The writers below put their bytes at `at` and return the end; the caller has made room.
char* put(char* at, std::string_view bytes) {
    std::memcpy(at, bytes.data(), bytes.size());
    return at + bytes.size();
}

// Room: 2 + 6 bytes per byte of `text` (each may become \u00XX).
char* put_string(char* at, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    *at++ = '"';
    if (!needs_escape(text)) {
        at = put(at, text);
        *at++ = '"';
        return at;
    }
    for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (!kNeedsEscape[c]) {
            *at++ = ch;
            continue;
        }
        *at++ = '\\';
        switch (c) {
            case '"': *at++ = '"'; continue;
            case '\\': *at++ = '\\'; continue;
            case '\n': *at++ = 'n'; continue;
            case '\r': *at++ = 'r'; continue;
            case '\t': *at++ = 't'; continue;
            default: break;
        }
        at = put(at, "u00");
        *at++ = kHex[c >> 4];
        *at++ = kHex[c & 0xf];
    }
    *at++ = '"';
    return at;
}

// Room: 2 bytes per byte.
char* put_hex(char* at, std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        *at++ = kHex[c >> 4];
        *at++ = kHex[c & 0xf];
    }
    return at;
}

// Room: 20 bytes (the longest int64 with its sign).
constexpr std::size_t kNumberRoom = 20;
char* put_number(char* at, std::int64_t value) {
    return std::to_chars(at, at + kNumberRoom, value).ptr;
}

// The keys with their punctuation, in canonical order; "hash" only when it is written.
constexpr std::string_view kAction = R"({"action":)";
constexpr std::string_view kClient = R"(,"client":)";
constexpr std::string_view kDecidedBy = R"(,"decided_by":)";
constexpr std::string_view kDetails = R"(,"details":)";
constexpr std::string_view kHash = R"(,"hash":")";
constexpr std::string_view kPrevHash = R"(","prev_hash":")";
constexpr std::string_view kPrevHashFirst = R"(,"prev_hash":")";
constexpr std::string_view kPrincipal = R"(","principal":)";
constexpr std::string_view kRequestId = R"(,"request_id":)";
constexpr std::string_view kResult = R"(,"result":)";
constexpr std::string_view kSecurable = R"(,"securable":)";
constexpr std::string_view kSeq = R"(,"seq":)";
constexpr std::string_view kTimeUs = R"(,"time_us":)";
constexpr std::string_view kTokenId = R"(,"token_id":)";
constexpr std::size_t kKeysRoom = kAction.size() + kClient.size() + kDecidedBy.size() +
                                  kDetails.size() + kHash.size() + kPrevHash.size() +
                                  kPrincipal.size() + kRequestId.size() + kResult.size() +
                                  kSecurable.size() + kSeq.size() + kTimeUs.size() +
                                  kTokenId.size() + 1;

// Reads the canonical JSON back, field by field; any surprise sets `ok_` false and the rest
// reads nothing. Lenient where the writer is strict (any \u escape below 0x100): the caller
// writes the record again and compares bytes.
class RecordReader {
public:
    explicit RecordReader(std::string_view in) : in_(in) {}

    bool ok() const { return ok_ && at_ == in_.size(); }

    void expect(std::string_view bytes) {
        if (!ok_ || in_.substr(at_, bytes.size()) != bytes) {
            ok_ = false;
            return;
        }
        at_ += bytes.size();
    }

    std::string string() {
        std::string out;
        expect("\"");
        while (ok_ && at_ < in_.size() && in_[at_] != '"') {
            const char ch = in_[at_++];
            out += ch == '\\' ? escaped() : ch;
        }
        expect("\"");
        return out;
    }

    std::string hex() {
        auto bytes = from_hex(string());
        ok_ = ok_ && bytes.ok();
        return bytes.ok() ? *bytes : std::string();
    }

    std::int64_t number() {
        std::int64_t value = 0;
        if (!ok_) {
            return value;
        }
        auto [end, error] = std::from_chars(in_.data() + at_, in_.data() + in_.size(), value);
        ok_ = error == std::errc();
        at_ = static_cast<std::size_t>(end - in_.data());
        return value;
    }

private:
    // After a backslash.
    char escaped() {
        if (at_ >= in_.size()) {
            ok_ = false;
            return 0;
        }
        switch (in_[at_++]) {
            case '"': return '"';
            case '\\': return '\\';
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case 'u': break;
            default: ok_ = false; return 0;
        }
        unsigned value = 0;
        const std::string_view digits = in_.substr(at_, 4);
        auto [end, error] =
            std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
        ok_ = ok_ && digits.size() == 4 && error == std::errc() &&
              end == digits.data() + digits.size() && value < 0x100;
        at_ += digits.size();
        return static_cast<char>(value);
    }

    std::string_view in_;
    std::size_t at_ = 0;
    bool ok_ = true;
};

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    const std::size_t start = out.size();
    out.resize(start + 2 + 6 * text.size());
    char* end = put_string(out.data() + start, text);
    out.resize(static_cast<std::size_t>(end - out.data()));
}

std::optional<ParsedRecord> parse_record_json(std::string_view json) {
    RecordReader in(json);
    ParsedRecord r;
    AuditEvent& e = r.event;
    in.expect(kAction);
    e.action = in.string();
    in.expect(kClient);
    e.client = in.string();
    in.expect(kDecidedBy);
    e.decided_by = in.string();
    in.expect(kDetails);
    e.details = in.string();
    in.expect(R"(,"hash":)");
    r.hash = in.hex();
    in.expect(R"(,"prev_hash":)");
    r.prev_hash = in.hex();
    in.expect(R"(,"principal":)");
    e.principal = in.string();
    in.expect(kRequestId);
    e.request_id = in.string();
    in.expect(kResult);
    e.result = in.string();
    in.expect(kSecurable);
    e.securable = in.string();
    in.expect(kSeq);
    r.seq = in.number();
    in.expect(kTimeUs);
    e.time_us = in.number();
    in.expect(kTokenId);
    e.token_id = in.string();
    in.expect("}");
    if (!in.ok()) {
        return std::nullopt;
    }
    std::string again;
    append_record_json(again, r.seq, e, r.prev_hash, &r.hash);
    if (again != json) {
        return std::nullopt;
    }
    return r;
}

void append_record_json(std::string& out, std::int64_t seq, const AuditEvent& e,
                        std::string_view prev_hash, const std::string* hash) {
    const std::array<std::string_view, 9> texts = {e.action,     e.client, e.decided_by,
                                                   e.details,    e.principal, e.request_id,
                                                   e.result,     e.securable, e.token_id};
    // Room for the worst case, made once; the copies below then check no capacity.
    std::size_t room = kKeysRoom + 2 * kNumberRoom + 2 * prev_hash.size() +
                       (hash != nullptr ? 2 * hash->size() : 0);
    for (std::string_view text : texts) {
        room += 2 + 6 * text.size();
    }
    const std::size_t start = out.size();
    out.resize(start + room);
    char* at = out.data() + start;
    at = put_string(put(at, kAction), e.action);
    at = put_string(put(at, kClient), e.client);
    at = put_string(put(at, kDecidedBy), e.decided_by);
    at = put_string(put(at, kDetails), e.details);
    if (hash != nullptr) {
        at = put_hex(put(at, kHash), *hash);
        at = put_hex(put(at, kPrevHash), prev_hash);
    } else {
        at = put_hex(put(at, kPrevHashFirst), prev_hash);
    }
    at = put_string(put(at, kPrincipal), e.principal);
    at = put_string(put(at, kRequestId), e.request_id);
    at = put_string(put(at, kResult), e.result);
    at = put_string(put(at, kSecurable), e.securable);
    at = put_number(put(at, kSeq), seq);
    at = put_number(put(at, kTimeUs), e.time_us);
    at = put_string(put(at, kTokenId), e.token_id);
    *at++ = '}';
    out.resize(static_cast<std::size_t>(at - out.data()));
}

}  // namespace sluice::governance::detail
