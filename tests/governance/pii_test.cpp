#include "governance/pii.h"

#include <doctest/doctest.h>

#include <random>

using namespace sluice::governance;

namespace {

// The types found in `text`, as "type:matched text" items.
std::vector<std::string> found(std::string_view text, PiiTypeSet types = kAllPiiTypes) {
    std::vector<std::string> out;
    for (const PiiMatch& m : find_pii(text, types)) {
        out.push_back(std::string(pii_type_name(m.type)) + ":" +
                      std::string(text.substr(m.begin, m.end - m.begin)));
    }
    return out;
}

using List = std::vector<std::string>;

}  // namespace

TEST_CASE("checksums: Luhn and IBAN mod-97") {
    CHECK(luhn_valid("4111111111111111"));
    CHECK(luhn_valid("378282246310005"));
    CHECK(luhn_valid("5555555555554444"));
    CHECK_FALSE(luhn_valid("4111111111111112"));
    CHECK_FALSE(luhn_valid("41111111x1111111"));
    CHECK_FALSE(luhn_valid(""));
    CHECK(iban_mod97_valid("DE89370400440532013000"));
    CHECK(iban_mod97_valid("GB82WEST12345698765432"));
    CHECK(iban_mod97_valid("FR1420041010050500013M02606"));
    CHECK(iban_mod97_valid("NL91ABNA0417164300"));
    CHECK_FALSE(iban_mod97_valid("DE89370400440532013001"));
    CHECK_FALSE(iban_mod97_valid("GB82WEST12345698765433"));
}

TEST_CASE("e-mail addresses in running text, and what is not one") {
    CHECK(found("write to jane.doe+news@mail.example.co.uk today") ==
          List{"email:jane.doe+news@mail.example.co.uk"});
    CHECK(found("Contact: <ops_team@example.org>.") == List{"email:ops_team@example.org"});
    CHECK(found("end of sentence a.b@example.com.") == List{"email:a.b@example.com"});
    CHECK(found("not addresses: @handle, user@localhost, a@b.c, x@-bad.com, y@bad-.com").empty());
    CHECK(found("decorator @Override and foo@ bar").empty());
}

TEST_CASE("phone numbers as people write them, and numbers that are not phones") {
    CHECK(found("call +44 20 7946 0958 now") == List{"phone:+44 20 7946 0958"});
    CHECK(found("US: +1 (555) 123-4567.") == List{"phone:+1 (555) 123-4567"});
    CHECK(found("office (555) 123-4567 or 555-123-4567 or 555.123.4567") ==
          List{"phone:(555) 123-4567", "phone:555-123-4567", "phone:555.123.4567"});
    CHECK(found("toll free 1-800-555-0199") == List{"phone:1-800-555-0199"});
    CHECK(found("London 020 7946 0958") == List{"phone:020 7946 0958"});
    CHECK(found("+4915123456789") == List{"phone:+4915123456789"});
    // Near misses: dates, versions, IP addresses, bare digit runs, amounts, area code 1xx.
    CHECK(found("on 2024-01-15 at 10.0.0.1 version 1.2.3.4 build 5551234567 paid 1,234.56")
              .empty());
    CHECK(found("order 123-456-7890").empty());  // area code starts with 1
    CHECK(found("+12 345").empty());              // too few digits
    CHECK(found("room 555-1234").empty());        // seven digits
    CHECK(found("id A555-123-4567").empty());     // inside a word
}

TEST_CASE("card numbers need the Luhn check and an issuer prefix") {
    CHECK(found("visa 4111 1111 1111 1111 ok") == List{"credit_card:4111 1111 1111 1111"});
    CHECK(found("mc 5555-5555-5555-4444") == List{"credit_card:5555-5555-5555-4444"});
    CHECK(found("amex 3782 822463 10005") == List{"credit_card:3782 822463 10005"});
    CHECK(found("bare 4012888888881881.") == List{"credit_card:4012888888881881"});
    // Luhn fails by one digit.
    CHECK(found("visa 4111 1111 1111 1112").empty());
    CHECK(found("mc 5555555555554445").empty());
    // Luhn holds but no issuer has the prefix or the length.
    CHECK(luhn_valid("1234567812345670"));
    CHECK(found("ref 1234567812345670").empty());
    CHECK(found("amex length 37828224631000").empty());
    // Mixed separators are not a printed card number.
    CHECK(found("4111 1111-1111 1111").empty());
}

TEST_CASE("IBANs: registered country, length and mod-97") {
    CHECK(found("pay DE89 3704 0044 0532 0130 00 by Friday") ==
          List{"iban:DE89 3704 0044 0532 0130 00"});
    CHECK(found("GB82WEST12345698765432") == List{"iban:GB82WEST12345698765432"});
    CHECK(found("IBAN: FR14 2004 1010 0505 0001 3M02 606.") ==
          List{"iban:FR14 2004 1010 0505 0001 3M02 606"});
    CHECK(found("NL91ABNA0417164300, thanks") == List{"iban:NL91ABNA0417164300"});
    // One digit off: the check fails.
    CHECK(found("DE89 3704 0044 0532 0130 01").empty());
    CHECK(found("GB82WEST12345698765433").empty());
    // Wrong length for the country, unknown country, lower case.
    CHECK(found("DE89370400440532013000123").empty());
    CHECK(found("XX89370400440532013000").empty());
    CHECK(found("de89370400440532013000").empty());
}

TEST_CASE("US social security and UK national insurance numbers") {
    CHECK(found("SSN 078-05-1120.") == List{"us_ssn:078-05-1120"});
    CHECK(found("ssn: 123-45-6789") == List{"us_ssn:123-45-6789"});
    for (const char* bad : {"000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567",
                            "123-45-0000", "123456789", "123 45 6789"}) {
        INFO(bad);
        CHECK(found(bad, pii_bit(PiiType::kUsSsn)).empty());
    }
    CHECK(found("NI number JG103759A") == List{"uk_nino:JG103759A"});
    CHECK(found("NI: AB 12 34 56 C.") == List{"uk_nino:AB 12 34 56 C"});
    for (const char* bad : {"BG123456A", "GB123456A", "DA123456A", "AO123456A", "AB123456E",
                            "AB12345C", "XAB123456C"}) {
        INFO(bad);
        CHECK(found(bad).empty());
    }
}

TEST_CASE("masking replaces each match by its label; counts never carry the text") {
    std::string text = "Mail bob@example.com or call +1 (555) 123-4567; card 4111111111111111.";
    auto matches = find_pii(text);
    CHECK(mask_pii(text, matches) == "Mail [EMAIL] or call [PHONE]; card [CREDIT_CARD].");
    PiiCounts counts = count_pii(matches);
    CHECK(pii_counts_json(counts) == R"({"credit_card":1,"email":1,"phone":1})");
    CHECK(found(text, pii_bit(PiiType::kEmail)) == List{"email:bob@example.com"});
    CHECK(pii_types_to_string(pii_bit(PiiType::kIban) | pii_bit(PiiType::kEmail)) == "email,iban");
    CHECK(parse_pii_types("email,IBAN").value() ==
          (pii_bit(PiiType::kIban) | pii_bit(PiiType::kEmail)));
    CHECK_FALSE(parse_pii_types("email,passport").ok());
}

TEST_CASE("the stream masker equals masking the whole text, however the text is cut") {
    const std::string text =
        "Dear customer, your IBAN DE89 3704 0044 0532 0130 00 and card 4111 1111 1111 1111 "
        "are on file; reach us at support.team@example.com or +44 20 7946 0958. Your SSN "
        "078-05-1120 and NI JG103759A were verified. Near misses: 4111 1111 1111 1112, "
        "DE89 3704 0044 0532 0130 01, 2024-01-15. Grüße, ünïcödé text ends here.";
    const std::string expected = mask_pii(text, find_pii(text));
    std::mt19937 random(12345);
    for (int round = 0; round < 200; ++round) {
        PiiStreamMasker masker;
        std::string out;
        std::size_t at = 0;
        while (at < text.size()) {
            std::size_t size = 1 + random() % (round % 2 == 0 ? 3 : 40);
            std::string piece = masker.push(std::string_view(text).substr(at, size));
            out += piece;
            at += size;
        }
        out += masker.finish();
        REQUIRE(out == expected);
        CHECK(masker.counts() == count_pii(find_pii(text)));
    }
    // What is emitted before the end never contains the start of a card number.
    PiiStreamMasker masker;
    std::string early = masker.push("card 4111 1111 ");
    CHECK(early.find("4111") == std::string::npos);
    CHECK(masker.held() > 0);
    std::string rest = masker.push("1111 1111 thanks");
    rest += masker.finish();
    CHECK(early + rest == "card [CREDIT_CARD] thanks");
}
