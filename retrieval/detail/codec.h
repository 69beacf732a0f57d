#pragma once
// A small binary encoding for the records the chunk store keeps in RocksDB: unsigned LEB128
// varints (zigzag for signed integers), length-prefixed strings, little-endian doubles and
// floats. Decoding never trusts its input: every read checks the bytes left and reports
// truncation instead of reading past the end, so a torn or corrupt value becomes kDataLoss where
// it is decoded.
//
// Thread safety: Encoder and Decoder are owned by one thread.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::retrieval::detail {

class Encoder {
public:
    void put_varint(std::uint64_t value) {
        while (value >= 0x80) {
            out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
            value >>= 7;
        }
        out_.push_back(static_cast<char>(value));
    }
    void put_string(std::string_view value) {
        put_varint(value.size());
        out_.append(value);
    }
    // Zigzag: small negative integers stay short (-1 is one byte, not ten).
    void put_zigzag(std::int64_t value) {
        put_varint((static_cast<std::uint64_t>(value) << 1) ^
                   static_cast<std::uint64_t>(value >> 63));
    }
    void put_double(double value) {
        char bytes[sizeof(double)];
        std::memcpy(bytes, &value, sizeof(double));
        out_.append(bytes, sizeof(double));
    }
    void put_floats(const std::vector<float>& values) {
        put_varint(values.size());
        out_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    }
    void put_strings(const std::vector<std::string>& values) {
        put_varint(values.size());
        for (const auto& value : values) {
            put_string(value);
        }
    }

    const std::string& bytes() const { return out_; }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

class Decoder {
public:
    explicit Decoder(std::string_view in) : in_(in) {}

    // Each getter returns false (and leaves the decoder failed) when the input is truncated.
    bool get_varint(std::uint64_t& value) {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos_ >= in_.size()) {
                return fail();
            }
            auto byte = static_cast<std::uint8_t>(in_[pos_++]);
            value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if ((byte & 0x80) == 0) {
                return true;
            }
        }
        return fail();
    }
    bool get_string(std::string& value) {
        std::uint64_t size = 0;
        if (!get_varint(size) || size > in_.size() - pos_) {
            return fail();
        }
        value.assign(in_.substr(pos_, size));
        pos_ += size;
        return true;
    }
    bool get_zigzag(std::int64_t& value) {
        std::uint64_t bits = 0;
        if (!get_varint(bits)) {
            return false;
        }
        value = static_cast<std::int64_t>((bits >> 1) ^ (~(bits & 1) + 1));
        return true;
    }
    bool get_double(double& value) {
        if (in_.size() - pos_ < sizeof(double)) {
            return fail();
        }
        std::memcpy(&value, in_.data() + pos_, sizeof(double));
        pos_ += sizeof(double);
        return true;
    }
    bool get_floats(std::vector<float>& values) {
        std::uint64_t count = 0;
        if (!get_varint(count) || count > (in_.size() - pos_) / sizeof(float)) {
            return fail();
        }
        values.resize(count);
        std::memcpy(values.data(), in_.data() + pos_, count * sizeof(float));
        pos_ += count * sizeof(float);
        return true;
    }
    bool get_strings(std::vector<std::string>& values) {
        std::uint64_t count = 0;
        if (!get_varint(count) || count > in_.size() - pos_) {
            return fail();
        }
        values.resize(count);
        for (auto& value : values) {
            if (!get_string(value)) {
                return false;
            }
        }
        return true;
    }

    bool failed() const { return failed_; }
    bool at_end() const { return pos_ == in_.size(); }

private:
    bool fail() {
        failed_ = true;
        return false;
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    bool failed_ = false;
};

// Big-endian fixed 8 bytes: RocksDB orders keys bytewise, so ids and sequences encoded this way
// iterate in numeric order.
inline std::string encode_u64_key(std::uint64_t value) {
    std::string key(8, '\0');
    for (int i = 7; i >= 0; --i) {
        key[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
        value >>= 8;
    }
    return key;
}

inline bool decode_u64_key(std::string_view key, std::uint64_t& value) {
    if (key.size() != 8) {
        return false;
    }
    value = 0;
    for (char c : key) {
        value = (value << 8) | static_cast<std::uint8_t>(c);
    }
    return true;
}

}  // namespace sluice::retrieval::detail
