#include "retrieval/chunk_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstdio>

#include "common/log.h"
#include "retrieval/detail/codec.h"
#include "retrieval/detail/records.h"

namespace sluice::retrieval {
namespace {

using detail::decode_u64_key;
using detail::encode_u64_key;

const char* const kFamilyNames[] = {"documents", "chunks", "lexical", "embeddings", "changes",
                                    "meta"};
const std::string kSequenceKey = "store.sequence";
const std::string kNextIdKey = "store.next_chunk_id";

Status from_rocksdb(const rocksdb::Status& status, const std::string& what) {
    if (status.ok()) {
        return Status::ok_status();
    }
    std::string message = what + ": " + status.ToString();
    if (status.IsCorruption()) {
        return data_loss(message);
    }
    if (status.IsIOError()) {
        // RocksDB reports a held LOCK file as an IO error; name it as what it is.
        if (status.ToString().find("lock") != std::string::npos) {
            return failed_precondition(message);
        }
        return io_error(message);
    }
    return internal_error(message);
}

std::string embedding_key(const std::string& embedder_id, const std::string& hash) {
    return embedder_id + '\0' + hash;
}

}  // namespace

std::string content_hash(std::string_view text) {
    std::uint64_t a = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
    std::uint64_t b = 0x9e3779b97f4a7c15ULL;  // a second stream with its own mixing
    for (unsigned char c : text) {
        a = (a ^ c) * 0x100000001b3ULL;
        b = (b ^ c) * 0xff51afd7ed558ccdULL;
        b ^= b >> 29;
    }
    b ^= text.size();
    char out[33];
    std::snprintf(out, sizeof(out), "%016llx%016llx", static_cast<unsigned long long>(a),
                  static_cast<unsigned long long>(b));
    return out;
}

ChunkStore::ChunkStore(Tag, std::filesystem::path path) : path_(std::move(path)) {}

ChunkStore::~ChunkStore() {
    if (db_) {
        for (auto* handle : families_) {
            (void)db_->DestroyColumnFamilyHandle(handle);
        }
        families_.clear();
        (void)db_->Close();
    }
}

Result<std::unique_ptr<ChunkStore>> ChunkStore::open(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) {
        return io_error("cannot create chunk store folder '" + path.string() + "': " +
                        ec.message());
    }
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    options.max_open_files = 256;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
    for (const char* name : kFamilyNames) {
        descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto status = rocksdb::DB::Open(options, path.string(), descriptors, &handles, &raw);
    if (!status.ok()) {
        return from_rocksdb(status, "opening chunk store '" + path.string() + "'");
    }
    auto store = std::make_unique<ChunkStore>(Tag{}, path);
    store->db_.reset(raw);
    // The default family is required by RocksDB and unused here.
    (void)raw->DestroyColumnFamilyHandle(handles[0]);
    store->families_.assign(handles.begin() + 1, handles.end());
    SLUICE_RETURN_IF_ERROR(store->load_counters());
    return store;
}

Status ChunkStore::load_counters() {
    SLUICE_ASSIGN_OR_RETURN(auto seq, get_meta(kSequenceKey));
    SLUICE_ASSIGN_OR_RETURN(auto next, get_meta(kNextIdKey));
    std::lock_guard lock(mutex_);
    if (seq && !decode_u64_key(*seq, sequence_)) {
        return data_loss("chunk store '" + path_.string() + "': sequence record has " +
                         std::to_string(seq->size()) + " bytes, expected 8");
    }
    if (next && !decode_u64_key(*next, next_chunk_id_)) {
        return data_loss("chunk store '" + path_.string() + "': id counter has " +
                         std::to_string(next->size()) + " bytes, expected 8");
    }
    return Status::ok_status();
}

std::uint64_t ChunkStore::sequence() const {
    std::lock_guard lock(mutex_);
    return sequence_;
}

ChunkStore::Batch ChunkStore::batch() { return Batch(this); }

Status ChunkStore::commit(Batch& batch) {
    SLUICE_CHECK(batch.store_ == this, "batch committed to another store");
    std::lock_guard lock(mutex_);
    std::uint64_t seq = sequence_ + 1;
    auto* write = batch.write_.get();
    std::uint64_t n = 0;
    for (const auto& [op, id] : batch.changes_) {
        detail::Encoder value;
        value.put_varint(static_cast<std::uint64_t>(op));
        value.put_varint(id);
        (void)write->Put(families_[kChanges], encode_u64_key(seq) + encode_u64_key(n++),
                         value.bytes());
    }
    (void)write->Put(families_[kMeta], kSequenceKey, encode_u64_key(seq));
    (void)write->Put(families_[kMeta], kNextIdKey, encode_u64_key(next_chunk_id_));
    rocksdb::WriteOptions options;
    options.sync = true;
    auto status = db_->Write(options, write);
    batch.write_ = std::make_unique<rocksdb::WriteBatch>();
    batch.changes_.clear();
    batch.operations_ = 0;
    if (!status.ok()) {
        return from_rocksdb(status, "writing to chunk store '" + path_.string() + "'");
    }
    sequence_ = seq;
    return Status::ok_status();
}

static Result<std::optional<std::string>> read_value(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family,
                                              const std::string& key, const std::string& what) {
    std::string value;
    auto status = db->Get(rocksdb::ReadOptions(), family, key, &value);
    if (status.IsNotFound()) {
        return std::optional<std::string>();
    }
    if (!status.ok()) {
        return from_rocksdb(status, "reading " + what);
    }
    return std::optional<std::string>(std::move(value));
}

Result<std::optional<DocumentRecord>> ChunkStore::get_document(const std::string& key) const {
    SLUICE_ASSIGN_OR_RETURN(auto bytes, read_value(db_.get(), families_[kDocuments], key,
                                                   "document '" + key + "'"));
    if (!bytes) {
        return std::optional<DocumentRecord>();
    }
    SLUICE_ASSIGN_OR_RETURN(auto record, detail::decode_document(key, *bytes));
    return std::optional<DocumentRecord>(std::move(record));
}

Result<std::optional<Chunk>> ChunkStore::get_chunk(std::uint64_t id) const {
    SLUICE_ASSIGN_OR_RETURN(auto bytes, read_value(db_.get(), families_[kChunks],
                                                   encode_u64_key(id),
                                                   "chunk " + std::to_string(id)));
    if (!bytes) {
        return std::optional<Chunk>();
    }
    SLUICE_ASSIGN_OR_RETURN(auto chunk, detail::decode_chunk(id, *bytes));
    return std::optional<Chunk>(std::move(chunk));
}

Result<std::optional<std::vector<float>>> ChunkStore::get_embedding(
    const std::string& embedder_id, const std::string& hash) const {
    SLUICE_ASSIGN_OR_RETURN(auto bytes,
                            read_value(db_.get(), families_[kEmbeddings],
                                       embedding_key(embedder_id, hash), "cached embedding"));
    if (!bytes) {
        return std::optional<std::vector<float>>();
    }
    detail::Decoder in(*bytes);
    std::vector<float> vector;
    if (!in.get_floats(vector) || !in.at_end()) {
        return data_loss("cached embedding " + hash + " for '" + embedder_id + "' is corrupt");
    }
    return std::optional<std::vector<float>>(std::move(vector));
}

Result<std::optional<std::string>> ChunkStore::get_meta(const std::string& name) const {
    return read_value(db_.get(), families_[kMeta], name, "index setting '" + name + "'");
}

Status ChunkStore::for_each_chunk(
    const std::function<bool(const Chunk&, const TermCounts&)>& visit) const {
    std::unique_ptr<rocksdb::Iterator> chunks(db_->NewIterator(rocksdb::ReadOptions(),
                                                               families_[kChunks]));
    for (chunks->SeekToFirst(); chunks->Valid(); chunks->Next()) {
        std::uint64_t id = 0;
        if (!decode_u64_key(chunks->key().ToStringView(), id)) {
            return data_loss("chunk store: malformed chunk key of " +
                             std::to_string(chunks->key().size()) + " bytes");
        }
        SLUICE_ASSIGN_OR_RETURN(Chunk chunk,
                                detail::decode_chunk(id, chunks->value().ToStringView()));
        SLUICE_ASSIGN_OR_RETURN(auto terms_bytes,
                                read_value(db_.get(), families_[kLexical], encode_u64_key(id),
                                           "terms of chunk " + std::to_string(id)));
        if (!terms_bytes) {
            return data_loss("chunk " + std::to_string(id) + " has no term counts");
        }
        SLUICE_ASSIGN_OR_RETURN(TermCounts terms, detail::decode_terms(id, *terms_bytes));
        if (!visit(chunk, terms)) {
            return Status::ok_status();
        }
    }
    return from_rocksdb(chunks->status(), "iterating chunks");
}

Status ChunkStore::for_each_chunk_vector_key(
    const std::function<void(std::string_view vector_source, std::string_view hash)>& visit) const {
    std::unique_ptr<rocksdb::Iterator> chunks(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kChunks]));
    for (chunks->SeekToFirst(); chunks->Valid(); chunks->Next()) {
        std::uint64_t id = 0;
        if (!decode_u64_key(chunks->key().ToStringView(), id)) {
            return data_loss("chunk store: malformed chunk key of " +
                             std::to_string(chunks->key().size()) + " bytes");
        }
        SLUICE_ASSIGN_OR_RETURN(Chunk chunk,
                                detail::decode_chunk(id, chunks->value().ToStringView()));
        if (!chunk.vector_source.empty()) {
            visit(chunk.vector_source, chunk.content_hash);
        }
    }
    return from_rocksdb(chunks->status(), "iterating chunks");
}

Result<std::vector<EmbeddingKey>> ChunkStore::embeddings_except(
    const std::function<bool(std::string_view embedder_id, std::string_view hash)>& keep) const {
    std::vector<EmbeddingKey> out;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kEmbeddings]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const std::string_view key = it->key().ToStringView();
        const std::size_t split = key.find('\0');
        if (split == std::string_view::npos) {
            return data_loss("chunk store: malformed embedding cache key of " +
                             std::to_string(key.size()) + " bytes");
        }
        const std::string_view embedder_id = key.substr(0, split);
        const std::string_view hash = key.substr(split + 1);
        if (!keep(embedder_id, hash)) {
            out.push_back({std::string(embedder_id), std::string(hash)});
        }
    }
    SLUICE_RETURN_IF_ERROR(from_rocksdb(it->status(), "iterating the embedding cache"));
    return out;
}

Status ChunkStore::delete_embeddings(const std::vector<EmbeddingKey>& keys) {
    if (keys.empty()) {
        return Status::ok_status();
    }
    rocksdb::WriteBatch deletes;
    for (const auto& key : keys) {
        (void)deletes.Delete(families_[kEmbeddings], embedding_key(key.embedder_id, key.hash));
    }
    rocksdb::WriteOptions options;
    options.sync = true;
    return from_rocksdb(db_->Write(options, &deletes),
                        "pruning the embedding cache of '" + path_.string() + "'");
}

Status ChunkStore::for_each_document(
    const std::function<bool(const DocumentRecord&)>& visit) const {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(),
                                                           families_[kDocuments]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
        SLUICE_ASSIGN_OR_RETURN(auto record, detail::decode_document(it->key().ToString(),
                                                                     it->value().ToStringView()));
        if (!visit(record)) {
            return Status::ok_status();
        }
    }
    return from_rocksdb(it->status(), "iterating documents");
}

Status ChunkStore::for_each_change_after(
    std::uint64_t after,
    const std::function<void(std::uint64_t, ChangeOp, std::uint64_t)>& visit) const {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(),
                                                           families_[kChanges]));
    for (it->Seek(encode_u64_key(after + 1)); it->Valid(); it->Next()) {
        auto key = it->key().ToStringView();
        std::uint64_t seq = 0;
        detail::Decoder in(it->value().ToStringView());
        std::uint64_t op = 0;
        std::uint64_t id = 0;
        if (key.size() != 16 || !decode_u64_key(key.substr(0, 8), seq) || !in.get_varint(op) ||
            !in.get_varint(id) || (op != 1 && op != 2)) {
            return data_loss("chunk store: malformed change record");
        }
        visit(seq, static_cast<ChangeOp>(op), id);
    }
    return from_rocksdb(it->status(), "iterating changes");
}

Status ChunkStore::prune_changes_through(std::uint64_t through) {
    rocksdb::WriteOptions options;
    auto status = db_->DeleteRange(options, families_[kChanges], encode_u64_key(0),
                                   encode_u64_key(through + 1));
    return from_rocksdb(status, "pruning change records");
}

std::uint64_t ChunkStore::disk_bytes() const {
    std::uint64_t total = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path_, ec)) {
        if (entry.is_regular_file(ec)) {
            total += entry.file_size(ec);
        }
    }
    return total;
}

ChunkStore::Batch::Batch(ChunkStore* store)
    : store_(store), write_(std::make_unique<rocksdb::WriteBatch>()) {}
ChunkStore::Batch::~Batch() = default;
ChunkStore::Batch::Batch(Batch&&) noexcept = default;
ChunkStore::Batch& ChunkStore::Batch::operator=(Batch&&) noexcept = default;

std::uint64_t ChunkStore::Batch::reserve_chunk_id() {
    std::lock_guard lock(store_->mutex_);
    return store_->next_chunk_id_++;
}

void ChunkStore::Batch::put_document(const DocumentRecord& record) {
    (void)write_->Put(store_->families_[kDocuments], record.key, detail::encode_document(record));
    ++operations_;
}

void ChunkStore::Batch::delete_document(const std::string& key) {
    (void)write_->Delete(store_->families_[kDocuments], key);
    ++operations_;
}

void ChunkStore::Batch::put_chunk(const Chunk& chunk, const TermCounts& terms) {
    std::string key = encode_u64_key(chunk.id);
    (void)write_->Put(store_->families_[kChunks], key, detail::encode_chunk(chunk));
    (void)write_->Put(store_->families_[kLexical], key, detail::encode_terms(terms));
    changes_.emplace_back(ChangeOp::kAdd, chunk.id);
    ++operations_;
}

void ChunkStore::Batch::put_terms(std::uint64_t id, const TermCounts& terms) {
    (void)write_->Put(store_->families_[kLexical], encode_u64_key(id), detail::encode_terms(terms));
    ++operations_;
}

void ChunkStore::Batch::delete_chunk(std::uint64_t id) {
    std::string key = encode_u64_key(id);
    (void)write_->Delete(store_->families_[kChunks], key);
    (void)write_->Delete(store_->families_[kLexical], key);
    changes_.emplace_back(ChangeOp::kRemove, id);
    ++operations_;
}

void ChunkStore::Batch::put_embedding(const std::string& embedder_id, const std::string& hash,
                                      const std::vector<float>& vector) {
    detail::Encoder value;
    value.put_floats(vector);
    (void)write_->Put(store_->families_[kEmbeddings], embedding_key(embedder_id, hash),
                      value.bytes());
    ++operations_;
}

void ChunkStore::Batch::put_meta(const std::string& name, const std::string& value) {
    (void)write_->Put(store_->families_[kMeta], name, value);
    ++operations_;
}

}  // namespace sluice::retrieval
