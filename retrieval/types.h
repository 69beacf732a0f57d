#pragma once
// The values retrieval passes around: who reads (Reader), who may read (Acl), what a document
// and a chunk carry (Document, Chunk, Metadata) and what a query returns (Hit).
//
// Thread safety: plain value types.

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace sluice::retrieval {

// The identity a query runs as. app/ fills it from the authenticated principal and the groups
// governance resolves for it; retrieval only compares names.
struct Reader {
    std::string principal;
    std::vector<std::string> groups;
};

// Who may read a document and each of its chunks. Deny by default: an empty Acl is readable by
// nobody, so a document indexed without access rules never leaks.
struct Acl {
    std::vector<std::string> principals;
    std::vector<std::string> groups;

    bool allows(const Reader& reader) const;
    bool empty() const { return principals.empty() && groups.empty(); }
};

// A metadata value: text, a float, an integer or a boolean. Each is kept as its own kind so that
// a value comes back as it was given (2020, not 2020.0; true, not 1.0). Filters compare text
// bytewise, numbers numerically (integers with floats by exact value) and booleans only with
// booleans (filter.h).
//
// bool is last: alternatives keep the indexes they had before it came. The converting
// constructor picks std::string for a string literal (C++20 counts pointer-to-bool as
// narrowing, P1957) and std::int64_t for an int; tests/retrieval/filter_test.cpp pins both.
using MetaValue = std::variant<std::string, double, std::int64_t, bool>;
using Metadata = std::map<std::string, MetaValue>;

// A source document as it is upserted. `key` is the primary key: upserting the same key replaces
// the document and all its chunks.
struct Document {
    std::string key;
    std::string uri;
    std::string title;
    std::string text;
    Metadata metadata;
    Acl acl;
    // Optional: the caller's own embedding for the whole text. Only used when the document
    // becomes exactly one chunk (otherwise each chunk is embedded by the index's embedder).
    std::vector<float> vector;
};

// A piece of a document, the unit that is indexed and returned. `id` is stable and unique within
// an index (the FAISS id); a chunk whose text changes gets a new id.
struct Chunk {
    std::uint64_t id = 0;
    std::string doc_key;
    std::uint32_t ordinal = 0;
    std::string uri;
    std::string title;
    std::vector<std::string> section_path;  // Markdown headings above the chunk, outermost first
    std::uint64_t char_begin = 0;           // [char_begin, char_end) in the document text, bytes
    std::uint64_t char_end = 0;
    std::string text;
    std::string content_hash;  // 32 hex digits of the 128-bit hash of what was embedded
    // Whose vector the chunk has: the embedder's id, "caller" for a vector given with the
    // document, empty for none. With content_hash it keys the embedding cache.
    std::string vector_source;
    Metadata metadata;
    Acl acl;
};

// One result of a query.
struct Hit {
    Chunk chunk;
    double score = 0;          // fused score in hybrid mode, else the ranker's own score
    double lexical_score = 0;  // BM25, 0 when the lexical ranker did not return the chunk
    double vector_score = 0;   // similarity (higher is closer), 0 when not returned by ANN
};

}  // namespace sluice::retrieval
