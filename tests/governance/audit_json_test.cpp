// The canonical JSON of audit records (governance/detail/audit_json.h) against a reference
// written for the test as simply as possible: a byte at a time, every field, every byte that
// JSON escapes at every position of texts long and short (the writer checks 8 bytes at a time
// and pads the last few), and the field order with and without the hash.

#include "governance/detail/audit_json.h"

#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <string>

#include "governance/audit_log.h"

using namespace sluice::governance;

namespace {

std::string reference_string(const std::string& text) {
    std::string out = "\"";
    for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"') {
            out += "\\\"";
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
            out += escaped;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string reference_hex(const std::string& bytes) {
    std::string out;
    for (char ch : bytes) {
        char digits[3];
        std::snprintf(digits, sizeof(digits), "%02x", static_cast<unsigned char>(ch));
        out += digits;
    }
    return out;
}

std::string reference_json(std::int64_t seq, const AuditEvent& e, const std::string& prev_hash,
                           const std::string* hash) {
    std::string out = "{\"action\":" + reference_string(e.action) +
                      ",\"client\":" + reference_string(e.client) +
                      ",\"decided_by\":" + reference_string(e.decided_by) +
                      ",\"details\":" + reference_string(e.details);
    if (hash != nullptr) {
        out += ",\"hash\":\"" + reference_hex(*hash) + "\"";
    }
    out += ",\"prev_hash\":\"" + reference_hex(prev_hash) + "\"" +
           ",\"principal\":" + reference_string(e.principal) +
           ",\"request_id\":" + reference_string(e.request_id) +
           ",\"result\":" + reference_string(e.result) +
           ",\"securable\":" + reference_string(e.securable) +
           ",\"seq\":" + std::to_string(seq) + ",\"time_us\":" + std::to_string(e.time_us) +
           ",\"token_id\":" + reference_string(e.token_id) + "}";
    return out;
}

AuditEvent plain_event() {
    AuditEvent e;
    e.time_us = 1'790'000'000'123'456;
    e.principal = "reader";
    e.action = "authorize:SELECT";
    e.securable = "table:c0.s1.t12";
    e.result = "allow";
    e.request_id = "req_0123456789abcdef";
    e.client = "127.0.0.1";
    e.token_id = "tok_0123456789abcdef";
    e.decided_by = "grant SELECT on catalog 'c0' to user 'reader'";
    e.details = "";
    return e;
}

std::string json_of(std::int64_t seq, const AuditEvent& e, const std::string& prev_hash,
                    const std::string* hash) {
    std::string out = "prefix kept:";
    detail::append_record_json(out, seq, e, prev_hash, hash);
    REQUIRE(out.starts_with("prefix kept:"));
    return out.substr(12);
}

}  // namespace

TEST_CASE("audit json: every escaped byte at every position of every field matches the reference") {
    const std::string prev_hash(32, '\x5a');
    std::array<std::string AuditEvent::*, 9> fields = {
        &AuditEvent::action,     &AuditEvent::client, &AuditEvent::decided_by,
        &AuditEvent::details,    &AuditEvent::principal, &AuditEvent::request_id,
        &AuditEvent::result,     &AuditEvent::securable, &AuditEvent::token_id};
    // Every byte JSON escapes, the bytes next to them that it does not, and bytes above 0x7f
    // (UTF-8 passes through as it is).
    std::string special;
    for (int c = 0; c < 0x20; ++c) {
        special += static_cast<char>(c);
    }
    special += "\"\\!#[]\x7f\x80\xc3\xa9\xff";
    std::int64_t checked = 0;
    for (auto field : fields) {
        for (std::size_t length = 1; length <= 19; ++length) {
            for (std::size_t at = 0; at < length; ++at) {
                for (char c : special) {
                    AuditEvent e = plain_event();
                    e.*field = std::string(length, 'x');
                    (e.*field)[at] = c;
                    CAPTURE(length);
                    CAPTURE(at);
                    CAPTURE(static_cast<int>(static_cast<unsigned char>(c)));
                    REQUIRE(json_of(7, e, prev_hash, nullptr) ==
                            reference_json(7, e, prev_hash, nullptr));
                    ++checked;
                }
            }
        }
    }
    CHECK(checked == 9 * 190 * static_cast<std::int64_t>(special.size()));
}

TEST_CASE("audit json: plain, empty, long and fully escaped texts, with and without the hash") {
    std::string prev_hash;
    std::string hash;
    for (int i = 0; i < 32; ++i) {
        prev_hash += static_cast<char>(i * 7);
        hash += static_cast<char>(255 - i);
    }
    AuditEvent e = plain_event();
    CHECK(json_of(1, e, prev_hash, nullptr) == reference_json(1, e, prev_hash, nullptr));
    CHECK(json_of(1, e, prev_hash, &hash) == reference_json(1, e, prev_hash, &hash));

    AuditEvent empty;
    CHECK(json_of(0, empty, std::string(), nullptr) ==
          reference_json(0, empty, std::string(), nullptr));

    // Every byte of every text escaped at worst (\u00XX): the room the writer makes must hold it.
    AuditEvent worst;
    worst.time_us = -9'223'372'036'854'775'807 - 1;
    for (auto* text : {&worst.action, &worst.client, &worst.decided_by, &worst.details,
                       &worst.principal, &worst.request_id, &worst.result, &worst.securable,
                       &worst.token_id}) {
        *text = std::string(300, '\x01');
    }
    CHECK(json_of(9'223'372'036'854'775'807, worst, prev_hash, &hash) ==
          reference_json(9'223'372'036'854'775'807, worst, prev_hash, &hash));

    AuditEvent long_text = plain_event();
    long_text.details = std::string(10'000, 'd') + "\"" + std::string(10'001, 'e');
    CHECK(json_of(3, long_text, prev_hash, &hash) ==
          reference_json(3, long_text, prev_hash, &hash));
}

TEST_CASE("audit json: the record JSON of the public API is the canonical JSON") {
    AuditRecord record;
    record.seq = 42;
    record.event = plain_event();
    record.prev_hash = std::string(32, '\x11');
    record.hash = std::string(32, '\x22');
    CHECK(audit_record_json(record, false) ==
          reference_json(42, record.event, record.prev_hash, nullptr));
    CHECK(audit_record_json(record, true) ==
          reference_json(42, record.event, record.prev_hash, &record.hash));
}

namespace {

bool same_record(const detail::ParsedRecord& parsed, std::int64_t seq, const AuditEvent& e,
                 const std::string& prev_hash, const std::string& hash) {
    const AuditEvent& p = parsed.event;
    return parsed.seq == seq && parsed.prev_hash == prev_hash && parsed.hash == hash &&
           p.time_us == e.time_us && p.principal == e.principal && p.action == e.action &&
           p.securable == e.securable && p.result == e.result && p.request_id == e.request_id &&
           p.client == e.client && p.token_id == e.token_id && p.decided_by == e.decided_by &&
           p.details == e.details;
}

}  // namespace

TEST_CASE("audit json: an archive line reads back into the record that wrote it") {
    const std::string prev_hash(32, '\x5a');
    const std::string hash(32, '\xa5');
    // Every byte JSON escapes, at the start, middle and end of every field.
    std::string special;
    for (int c = 0; c < 0x20; ++c) {
        special += static_cast<char>(c);
    }
    special += "\"\\\x7f\xc3\xa9";
    std::array<std::string AuditEvent::*, 9> fields = {
        &AuditEvent::action,     &AuditEvent::client, &AuditEvent::decided_by,
        &AuditEvent::details,    &AuditEvent::principal, &AuditEvent::request_id,
        &AuditEvent::result,     &AuditEvent::securable, &AuditEvent::token_id};
    for (auto field : fields) {
        for (char c : special) {
            AuditEvent e = plain_event();
            e.*field = std::string(1, c) + "text" + std::string(1, c) + "more" + std::string(1, c);
            const std::string line = json_of(12, e, prev_hash, &hash);
            auto parsed = detail::parse_record_json(line);
            CAPTURE(line);
            REQUIRE(parsed.has_value());
            CHECK(same_record(*parsed, 12, e, prev_hash, hash));
        }
    }
    AuditEvent empty;
    empty.time_us = -5;
    auto parsed = detail::parse_record_json(json_of(0, empty, std::string(), &hash));
    REQUIRE(parsed.has_value());
    CHECK(same_record(*parsed, 0, empty, std::string(), hash));
}

TEST_CASE("audit json: a line that is not exactly what the log writes is refused") {
    const std::string hash(32, '\x01');
    const std::string line = json_of(3, plain_event(), std::string(32, '\x02'), &hash);
    REQUIRE(detail::parse_record_json(line).has_value());
    auto replaced = [&line](std::string_view from, std::string_view to) {
        std::string changed = line;
        const std::size_t at = changed.find(from);
        REQUIRE(at != std::string::npos);
        return changed.replace(at, from.size(), to);
    };
    CHECK_FALSE(detail::parse_record_json(line + "\n").has_value());
    CHECK_FALSE(detail::parse_record_json(line.substr(0, line.size() - 1)).has_value());
    CHECK_FALSE(detail::parse_record_json(replaced("\"seq\":3", "\"seq\": 3")).has_value());
    CHECK_FALSE(detail::parse_record_json(replaced("\"seq\":3", "\"seq\":03")).has_value());
    CHECK_FALSE(detail::parse_record_json(replaced("reader", "re\\u0061der")).has_value());
    CHECK_FALSE(detail::parse_record_json(replaced("0101", "0G01")).has_value());
    CHECK_FALSE(detail::parse_record_json(replaced("0101", "0A01")).has_value());  // upper case
    CHECK_FALSE(detail::parse_record_json(replaced("\"action\"", "\"Action\"")).has_value());
    CHECK_FALSE(detail::parse_record_json("").has_value());
}
