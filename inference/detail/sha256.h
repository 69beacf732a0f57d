#pragma once
// SHA-256 (FIPS 180-4), used to verify tokenizer rank files before they are trusted. Implemented
// here because inference/ links nothing beyond the standard library, PCRE2 and a JSON header.
//
// Thread safety: Sha256 is owned by one thread; sha256_hex() is a pure function.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::inference::detail {

class Sha256 {
public:
    Sha256();

    // Appends bytes to the message; may be called any number of times before digest().
    void update(std::string_view bytes);
    // Finishes the message and returns its 32-byte digest. The object must not be reused.
    std::array<std::uint8_t, 32> digest();

private:
    void compress(const std::uint8_t* block);

    std::array<std::uint32_t, 8> state_;
    std::array<std::uint8_t, 64> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t total_bytes_ = 0;
};

// Lower-case hex digest of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace sluice::inference::detail
