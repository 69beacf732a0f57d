#include "retrieval/vector_factory.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace sluice::retrieval {
namespace {

constexpr std::uint64_t kHnswDefaultM = 32;  // FAISS's, for a bare "HNSW"
constexpr std::uint64_t kHnswMinM = 4;
constexpr std::uint64_t kHnswMaxM = 256;
constexpr std::uint64_t kIvfMaxLists = 65536;
constexpr std::uint64_t kPqDefaultBits = 8;  // FAISS's, for PQ<m> without x<bits>
constexpr std::uint64_t kPqMaxBits = 8;      // IndexIVFPQ's limit in FAISS 1.7

const char* const kSupported =
    "expected Flat, SQfp16, HNSW<M>[,Flat] or "
    "IVF<nlist>,{Flat|SQ4|SQ6|SQ8|SQfp16|PQ<m>[x<bits>]}";

// A decimal number as written (for messages) and its value, saturated so that no string of
// digits overflows it.
struct Number {
    std::string text;
    std::uint64_t value = 0;
};

// Takes the digits at the front of `rest`; nullopt when there are none.
std::optional<Number> take_number(std::string_view& rest) {
    constexpr std::uint64_t kSaturated = std::numeric_limits<std::uint64_t>::max() / 16;
    Number out;
    std::size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
        auto digit = static_cast<std::uint64_t>(rest[digits] - '0');
        out.value = out.value >= kSaturated / 10 ? kSaturated : out.value * 10 + digit;
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    out.text = rest.substr(0, digits);
    rest.remove_prefix(digits);
    return out;
}

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

Status refuse(std::string_view factory, const std::string& why) {
    return invalid_argument("index factory '" + std::string(factory) + "': " + why);
}

// `rest` follows "HNSW".
Status check_hnsw(std::string_view factory, std::string_view rest) {
    Number m{"", kHnswDefaultM};
    if (auto number = take_number(rest)) {
        m = *number;
    }
    if (!rest.empty() && rest != ",Flat" && rest != "_Flat") {
        return refuse(factory,
                      "HNSW over '" + std::string(rest.substr(1)) +
                          "' is not supported (codes need training, which only IVF indexes get "
                          "here); expected HNSW<M> or HNSW<M>,Flat");
    }
    if (m.value < kHnswMinM || m.value > kHnswMaxM) {
        return refuse(factory, "HNSW M " + m.text + ", expected " + std::to_string(kHnswMinM) +
                                   " to " + std::to_string(kHnswMaxM));
    }
    return Status::ok_status();
}

// `rest` follows "PQ" in an IVF's codes.
Status check_pq(std::string_view factory, std::string_view rest, std::size_t dimension) {
    const std::string codes = "PQ" + std::string(rest);
    auto m = take_number(rest);
    if (!m) {
        return refuse(factory, "PQ needs its number of sub-quantizers: PQ<m>[x<bits>]");
    }
    Number bits{"", kPqDefaultBits};
    if (starts_with(rest, "x")) {
        rest.remove_prefix(1);
        auto number = take_number(rest);
        if (!number) {
            return refuse(factory, "PQ<m>x needs its bits per code: PQ<m>x<bits>");
        }
        bits = *number;
    }
    if (rest == "np") {  // no polysemous training: never done here anyway
        rest = {};
    }
    if (!rest.empty()) {
        return refuse(factory, "IVF codes '" + codes +
                                   "' are not supported (fast-scan and refined PQ are not); "
                                   "expected PQ<m>[x<bits>]");
    }
    if (m->value == 0) {
        return refuse(factory, "PQ m 0, expected at least 1");
    }
    if (dimension != 0 && (m->value > dimension || dimension % m->value != 0)) {
        return refuse(factory, "PQ m " + m->text + " does not divide the dimension " +
                                   std::to_string(dimension));
    }
    if (bits.value == 0 || bits.value > kPqMaxBits) {
        return refuse(factory,
                      "PQ bits " + bits.text + ", expected 1 to " + std::to_string(kPqMaxBits));
    }
    return Status::ok_status();
}

// `rest` follows "IVF".
Status check_ivf(std::string_view factory, std::string_view rest, std::size_t dimension) {
    auto lists = take_number(rest);
    if (!lists) {
        return refuse(factory, "IVF needs its number of lists: IVF<nlist>,<codes>");
    }
    const std::uint64_t nlist = lists->value;
    const std::string& shown = lists->text;
    if (starts_with(rest, "k") || starts_with(rest, "M")) {
        // Newer FAISS reads these as x1024 and x1048576; 1.7 does not parse them.
        return refuse(factory, "IVF nlist '" + shown + rest.front() +
                                   "': give the number of lists in digits");
    }
    if (rest.empty()) {
        return refuse(factory, "IVF needs codes after its lists: IVF<nlist>,<codes>");
    }
    if (rest.front() != ',') {
        const std::string quantizer = "IVF" + shown + std::string(rest.substr(0, rest.find(',')));
        return refuse(factory, "coarse quantizer '" + quantizer +
                                   "' is not supported; expected IVF<nlist> (a flat quantizer)");
    }
    rest.remove_prefix(1);
    if (nlist == 0 || nlist > kIvfMaxLists) {
        return refuse(factory,
                      "IVF nlist " + shown + ", expected 1 to " + std::to_string(kIvfMaxLists));
    }
    if (rest == "Flat" || rest == "SQ4" || rest == "SQ6" || rest == "SQ8" || rest == "SQfp16") {
        return Status::ok_status();
    }
    if (starts_with(rest, "PQ")) {
        return check_pq(factory, rest.substr(2), dimension);
    }
    return refuse(factory, "IVF codes '" + std::string(rest) +
                               "' are not supported; expected Flat, SQ4, SQ6, SQ8, SQfp16 or "
                               "PQ<m>[x<bits>]");
}

}  // namespace

Status validate_vector_factory(std::string_view factory, std::size_t dimension) {
    if (factory == "Flat" || factory == "SQfp16") {
        return Status::ok_status();
    }
    if (factory.find("IDMap") != std::string_view::npos) {
        return refuse(factory, "the index keeps its own id map; give the inner index alone (" +
                                   std::string(kSupported) + ")");
    }
    if (starts_with(factory, "HNSW")) {
        return check_hnsw(factory, factory.substr(4));
    }
    if (starts_with(factory, "IVF")) {
        return check_ivf(factory, factory.substr(3), dimension);
    }
    if (factory == "SQ4" || factory == "SQ6" || factory == "SQ8" || starts_with(factory, "PQ") ||
        starts_with(factory, "RQ") || starts_with(factory, "LSQ")) {
        return refuse(factory,
                      "needs training, which only IVF indexes get here; expected "
                      "IVF<nlist>,<codes> (e.g. IVF256,SQ8 or IVF256,PQ16), Flat or SQfp16");
    }
    return refuse(factory, std::string("not supported; ") + kSupported);
}

}  // namespace sluice::retrieval
