#include "retrieval/detail/records.h"

#include "retrieval/detail/codec.h"

namespace sluice::retrieval::detail {
namespace {

// Leading byte of every record: a later layout bumps it and keeps a decoder for this one.
constexpr std::uint64_t kRecordVersion = 1;

// Each value is a kind, then its bytes. Kinds 0 (text) and 1 (float) are those of every earlier
// build; 2 (integer, zigzag varint) came later, so that integers come back as integers, and 3
// (boolean, a varint 0 or 1) after it, so that booleans come back as booleans. A kind is never
// reused or redefined: records written before a kind existed decode as they were written (a
// boolean stored as the float 1.0 stays that float). A build that predates a kind finds a
// record holding it corrupt, as it does an integer.
enum MetaKind : std::uint64_t { kText = 0, kFloat = 1, kInteger = 2, kBool = 3 };

void put_metadata(Encoder& out, const Metadata& metadata) {
    out.put_varint(metadata.size());
    for (const auto& [name, value] : metadata) {
        out.put_string(name);
        if (const auto* text = std::get_if<std::string>(&value)) {
            out.put_varint(kText);
            out.put_string(*text);
        } else if (const auto* integer = std::get_if<std::int64_t>(&value)) {
            out.put_varint(kInteger);
            out.put_zigzag(*integer);
        } else if (const auto* flag = std::get_if<bool>(&value)) {
            out.put_varint(kBool);
            out.put_varint(*flag ? 1 : 0);
        } else {
            out.put_varint(kFloat);
            out.put_double(std::get<double>(value));
        }
    }
}

bool get_metadata(Decoder& in, Metadata& metadata) {
    std::uint64_t count = 0;
    if (!in.get_varint(count)) {
        return false;
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        std::string name;
        std::uint64_t kind = 0;
        if (!in.get_string(name) || !in.get_varint(kind)) {
            return false;
        }
        if (kind == kText) {
            std::string text;
            if (!in.get_string(text)) {
                return false;
            }
            metadata[name] = std::move(text);
        } else if (kind == kFloat) {
            double number = 0;
            if (!in.get_double(number)) {
                return false;
            }
            metadata[name] = number;
        } else if (kind == kInteger) {
            std::int64_t number = 0;
            if (!in.get_zigzag(number)) {
                return false;
            }
            metadata[name] = number;
        } else if (kind == kBool) {
            std::uint64_t flag = 0;
            if (!in.get_varint(flag) || flag > 1) {
                return false;
            }
            metadata[name] = flag == 1;
        } else {
            return false;
        }
    }
    return true;
}

void put_acl(Encoder& out, const Acl& acl) {
    out.put_strings(acl.principals);
    out.put_strings(acl.groups);
}

bool get_acl(Decoder& in, Acl& acl) {
    return in.get_strings(acl.principals) && in.get_strings(acl.groups);
}

bool check_version(Decoder& in) {
    std::uint64_t version = 0;
    return in.get_varint(version) && version == kRecordVersion;
}

}  // namespace

std::string encode_document(const DocumentRecord& record) {
    Encoder out;
    out.put_varint(kRecordVersion);
    out.put_string(record.uri);
    out.put_string(record.title);
    put_metadata(out, record.metadata);
    put_acl(out, record.acl);
    out.put_string(record.text_hash);
    out.put_varint(record.chunk_ids.size());
    for (auto id : record.chunk_ids) {
        out.put_varint(id);
    }
    return out.take();
}

Result<DocumentRecord> decode_document(const std::string& key, std::string_view bytes) {
    Decoder in(bytes);
    DocumentRecord record;
    record.key = key;
    std::uint64_t count = 0;
    bool ok = check_version(in) && in.get_string(record.uri) && in.get_string(record.title) &&
              get_metadata(in, record.metadata) && get_acl(in, record.acl) &&
              in.get_string(record.text_hash) && in.get_varint(count) && count <= bytes.size();
    for (std::uint64_t i = 0; ok && i < count; ++i) {
        std::uint64_t id = 0;
        ok = in.get_varint(id);
        record.chunk_ids.push_back(id);
    }
    if (!ok || !in.at_end()) {
        return data_loss("document record '" + key + "' is corrupt (" +
                         std::to_string(bytes.size()) + " bytes)");
    }
    return record;
}

std::string encode_chunk(const Chunk& chunk) {
    Encoder out;
    out.put_varint(kRecordVersion);
    out.put_string(chunk.doc_key);
    out.put_varint(chunk.ordinal);
    out.put_string(chunk.uri);
    out.put_string(chunk.title);
    out.put_strings(chunk.section_path);
    out.put_varint(chunk.char_begin);
    out.put_varint(chunk.char_end);
    out.put_string(chunk.text);
    out.put_string(chunk.content_hash);
    out.put_string(chunk.vector_source);
    put_metadata(out, chunk.metadata);
    put_acl(out, chunk.acl);
    return out.take();
}

Result<Chunk> decode_chunk(std::uint64_t id, std::string_view bytes) {
    Decoder in(bytes);
    Chunk chunk;
    chunk.id = id;
    std::uint64_t ordinal = 0;
    bool ok = check_version(in) && in.get_string(chunk.doc_key) && in.get_varint(ordinal) &&
              in.get_string(chunk.uri) && in.get_string(chunk.title) &&
              in.get_strings(chunk.section_path) && in.get_varint(chunk.char_begin) &&
              in.get_varint(chunk.char_end) && in.get_string(chunk.text) &&
              in.get_string(chunk.content_hash) && in.get_string(chunk.vector_source) &&
              get_metadata(in, chunk.metadata) &&
              get_acl(in, chunk.acl);
    if (!ok || !in.at_end()) {
        return data_loss("chunk record " + std::to_string(id) + " is corrupt (" +
                         std::to_string(bytes.size()) + " bytes)");
    }
    chunk.ordinal = static_cast<std::uint32_t>(ordinal);
    return chunk;
}

std::string encode_terms(const TermCounts& terms) {
    Encoder out;
    out.put_varint(kRecordVersion);
    out.put_varint(terms.size());
    for (const auto& [term, count] : terms) {
        out.put_string(term);
        out.put_varint(count);
    }
    return out.take();
}

Result<TermCounts> decode_terms(std::uint64_t id, std::string_view bytes) {
    Decoder in(bytes);
    TermCounts terms;
    std::uint64_t count = 0;
    bool ok = check_version(in) && in.get_varint(count) && count <= bytes.size();
    for (std::uint64_t i = 0; ok && i < count; ++i) {
        std::string term;
        std::uint64_t tf = 0;
        ok = in.get_string(term) && in.get_varint(tf);
        terms.emplace_back(std::move(term), static_cast<std::uint32_t>(tf));
    }
    if (!ok || !in.at_end()) {
        return data_loss("term counts of chunk " + std::to_string(id) + " are corrupt");
    }
    return terms;
}

}  // namespace sluice::retrieval::detail
