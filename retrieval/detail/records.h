#pragma once
// Encodings of the chunk store's records (see detail/codec.h). Decoders return kDataLoss naming
// the record when its bytes are truncated or malformed.

#include <string>
#include <string_view>

#include "common/result.h"
#include "retrieval/chunk_store.h"

namespace sluice::retrieval::detail {

std::string encode_document(const DocumentRecord& record);
Result<DocumentRecord> decode_document(const std::string& key, std::string_view bytes);

std::string encode_chunk(const Chunk& chunk);
Result<Chunk> decode_chunk(std::uint64_t id, std::string_view bytes);

std::string encode_terms(const TermCounts& terms);
Result<TermCounts> decode_terms(std::uint64_t id, std::string_view bytes);

}  // namespace sluice::retrieval::detail
