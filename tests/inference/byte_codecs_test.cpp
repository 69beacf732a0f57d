#include "inference/detail/byte_codecs.h"

#include <doctest/doctest.h>

#include "inference/detail/utf8.h"

namespace sluice::inference::detail {
namespace {

TEST_CASE("base64 follows RFC 4648") {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
    for (auto [plain, encoded] : vectors) {
        CHECK(base64_encode(plain) == encoded);
        CHECK(base64_decode(encoded) == std::optional<std::string>(plain));
    }
    for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "=Zm9", "Zg==Zg==", "Zm 9"}) {
        CHECK_MESSAGE(!base64_decode(bad).has_value(), bad);
    }
}

TEST_CASE("gpt-2 byte-level spelling round-trips every byte") {
    CHECK(byte_level_encode(" ") == "\xC4\xA0");  // U+0120 'Ġ'
    CHECK(byte_level_encode("\n") == "\xC4\x8A");  // U+010A 'Ċ'
    CHECK(byte_level_encode("A") == "A");
    std::string all;
    for (int byte = 0; byte < 256; ++byte) {
        all.push_back(static_cast<char>(byte));
    }
    CHECK(byte_level_decode(byte_level_encode(all)) == std::optional<std::string>(all));
    CHECK(!byte_level_decode(" ").has_value());         // space is spelled U+0120
    CHECK(!byte_level_decode("\xE4\xB8\xAD").has_value());  // not in the map
    CHECK(!byte_level_decode("\xC4").has_value());      // not UTF-8
}

TEST_CASE("utf-8 validation reports the first bad byte") {
    CHECK(!find_invalid_utf8("plain ascii and é 中 😀").has_value());
    CHECK(find_invalid_utf8("abc\xFF") == 3u);
    CHECK(find_invalid_utf8("ab\xC0\xAF") == 2u);        // overlong '/'
    CHECK(find_invalid_utf8("12345678\xED\xA0\x80") == 8u);  // surrogate U+D800
    CHECK(find_invalid_utf8("\xF4\x90\x80\x80") == 0u);  // above U+10FFFF
    CHECK(find_invalid_utf8("x\xE4\xB8") == 1u);          // truncated at the end
}

TEST_CASE("lossy decoding replaces each maximal invalid subpart once") {
    auto lossy = [](std::string_view bytes) {
        std::string out;
        append_utf8_lossy(out, bytes);
        return out;
    };
    const std::string r(kReplacementCharacter);
    CHECK(lossy("\xF0\x9F\x98" "A") == r + "A");  // one truncated sequence
    CHECK(lossy("\xC0\xAF") == r + r);            // C0 never starts a sequence
    CHECK(lossy("\xED\xA0\x80") == r + r + r);    // a surrogate: three subparts
    CHECK(lossy("a\x80z") == "a" + r + "z");
    CHECK(lossy("\xE4\xB8\xAD") == "\xE4\xB8\xAD");
}

TEST_CASE("incomplete suffixes are only correct starts of a sequence") {
    CHECK(incomplete_utf8_suffix("abc") == 0);
    CHECK(incomplete_utf8_suffix("a\xE4") == 1);
    CHECK(incomplete_utf8_suffix("a\xE4\xB8") == 2);
    CHECK(incomplete_utf8_suffix("\xF0\x9F\x98") == 3);
    CHECK(incomplete_utf8_suffix("\xE4\xB8\xAD") == 0);
    CHECK(incomplete_utf8_suffix("a\xFF") == 0);      // never valid
    CHECK(incomplete_utf8_suffix("a\xE0\x80") == 0);  // E0 80 can never complete
}

}  // namespace
}  // namespace sluice::inference::detail
