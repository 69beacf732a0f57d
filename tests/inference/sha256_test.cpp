#include "inference/detail/sha256.h"

#include <doctest/doctest.h>

#include "inference/detail/read_file.h"
#include "inference/tokenizer_files.h"

namespace sluice::inference::detail {
namespace {

// FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf" examples) and the empty message.
TEST_CASE("sha256 matches the published test vectors") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000000, 'a')) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 gives the same digest however the message is split") {
    std::string message;
    for (int i = 0; i < 1000; ++i) {
        message.push_back(static_cast<char>(i * 37 + 11));
    }
    for (std::size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u}) {
        Sha256 hasher;
        for (std::size_t pos = 0; pos < message.size(); pos += chunk) {
            hasher.update(std::string_view(message).substr(pos, chunk));
        }
        auto digest = hasher.digest();
        std::string hex;
        for (auto byte : digest) {
            constexpr char kHex[] = "0123456789abcdef";
            hex.push_back(kHex[byte >> 4]);
            hex.push_back(kHex[byte & 0xF]);
        }
        CHECK_MESSAGE(hex == sha256_hex(message), "chunk " << chunk);
    }
}

TEST_CASE("the shipped rank file is OpenAI's cl100k_base") {
    auto bytes = read_file(std::filesystem::path(SLUICE_SOURCE_DIR) /
                           "inference/assets/cl100k_base.tiktoken");
    REQUIRE(bytes.ok());
    CHECK(sha256_hex(*bytes) == kCl100kSha256);
}

}  // namespace
}  // namespace sluice::inference::detail
