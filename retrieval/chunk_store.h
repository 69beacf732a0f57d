#pragma once
// The chunk store: one RocksDB database per index holding, in column families,
//   documents   doc key            -> uri, title, metadata, acl, text hash, chunk ids
//   chunks      chunk id (8 bytes) -> the chunk (text, offsets, section path, metadata, acl)
//   lexical     chunk id           -> the chunk's analyzed term counts (BM25 reloads from these)
//   embeddings  embedder id, hash  -> vector (a cache: unchanged text is never embedded twice)
//   changes     sequence, n        -> chunk added / removed (what a vector snapshot replays)
//   meta        name               -> index settings, counters
// Every change goes through one Batch, applied with one atomic RocksDB WriteBatch that also
// advances the store's sequence, so a process killed at any point leaves either all of a change
// or none of it. Writes go to RocksDB's write-ahead log and are synced before commit() returns.
//
// Thread safety: thread-safe (RocksDB is; the counters sit behind a mutex). Index serializes its
// writers so that reserved ids and sequences are committed in order.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "retrieval/lexical_index.h"
#include "retrieval/types.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace sluice::retrieval {

// What the store keeps of a document: everything but the text, which lives in its chunks.
struct DocumentRecord {
    std::string key;
    std::string uri;
    std::string title;
    Metadata metadata;
    Acl acl;
    std::string text_hash;  // of the whole text, metadata and acl: equal means unchanged
    std::vector<std::uint64_t> chunk_ids;
};

enum class ChangeOp : std::uint8_t { kAdd = 1, kRemove = 2 };

// A cached embedding's key: the embedder that made it and the content hash of the text.
struct EmbeddingKey {
    std::string embedder_id;
    std::string hash;
};

class ChunkStore {
public:
    class Batch;

    // Opens or creates the database at `path`. kDataLoss when RocksDB reports corruption,
    // kIoError when the folder cannot be used, kFailedPrecondition when another process has it.
    static Result<std::unique_ptr<ChunkStore>> open(const std::filesystem::path& path);
    ~ChunkStore();
    ChunkStore(const ChunkStore&) = delete;
    ChunkStore& operator=(const ChunkStore&) = delete;

    Batch batch();
    // Applies the batch atomically and advances sequence() by one. The batch is spent.
    Status commit(Batch& batch);

    // The sequence of the last committed batch (0 for a new store).
    std::uint64_t sequence() const;

    Result<std::optional<DocumentRecord>> get_document(const std::string& key) const;
    Result<std::optional<Chunk>> get_chunk(std::uint64_t id) const;
    Result<std::optional<std::vector<float>>> get_embedding(const std::string& embedder_id,
                                                            const std::string& hash) const;
    Result<std::optional<std::string>> get_meta(const std::string& name) const;

    // Visits every chunk with its term counts, in id order; `visit` returns false to stop.
    Status for_each_chunk(
        const std::function<bool(const Chunk&, const TermCounts&)>& visit) const;
    // Visits the cache key (vector source, content hash) of every chunk that has a vector, from
    // one consistent view of the store: safe while other threads commit (for_each_chunk reads
    // each chunk's terms apart from it, so it needs the writers held off).
    Status for_each_chunk_vector_key(const std::function<void(std::string_view vector_source,
                                                              std::string_view hash)>& visit) const;
    // Visits every document key in key order.
    Status for_each_document(const std::function<bool(const DocumentRecord&)>& visit) const;
    // Visits the chunk changes of batches with sequence > `after`, in order.
    Status for_each_change_after(
        std::uint64_t after,
        const std::function<void(std::uint64_t seq, ChangeOp op, std::uint64_t id)>& visit) const;
    // Drops change records up to and including `through` (a snapshot covers them).
    Status prune_changes_through(std::uint64_t through);
    // The keys of the cached embeddings for which `keep(embedder_id, hash)` is false.
    Result<std::vector<EmbeddingKey>> embeddings_except(
        const std::function<bool(std::string_view embedder_id, std::string_view hash)>& keep) const;
    // Deletes cached embeddings, in one synced write.
    Status delete_embeddings(const std::vector<EmbeddingKey>& keys);

    // Bytes of the database's files on disk.
    std::uint64_t disk_bytes() const;
    const std::filesystem::path& path() const { return path_; }

    struct Tag {};
    ChunkStore(Tag, std::filesystem::path path);

private:
    friend class Batch;
    enum Family { kDocuments, kChunks, kLexical, kEmbeddings, kChanges, kMeta, kFamilyCount };

    Status load_counters();

    std::filesystem::path path_;
    std::unique_ptr<rocksdb::DB> db_;
    std::vector<rocksdb::ColumnFamilyHandle*> families_;  // owned; destroyed before db_
    mutable std::mutex mutex_;
    std::uint64_t sequence_ = 0;       // GUARDED_BY(mutex_)
    std::uint64_t next_chunk_id_ = 1;  // GUARDED_BY(mutex_)
};

// The changes of one commit. Owned by one thread; nothing is visible until ChunkStore::commit.
class ChunkStore::Batch {
public:
    ~Batch();
    Batch(Batch&&) noexcept;
    Batch& operator=(Batch&&) noexcept;

    // A fresh chunk id; ids reserved by a batch that is never committed are simply skipped.
    std::uint64_t reserve_chunk_id();

    void put_document(const DocumentRecord& record);
    void delete_document(const std::string& key);
    void put_chunk(const Chunk& chunk, const TermCounts& terms);
    // Replaces a stored chunk's term counts (a re-analysis); not a change of the chunk, so no
    // change record is written.
    void put_terms(std::uint64_t id, const TermCounts& terms);
    void delete_chunk(std::uint64_t id);
    void put_embedding(const std::string& embedder_id, const std::string& hash,
                       const std::vector<float>& vector);
    void put_meta(const std::string& name, const std::string& value);

    bool empty() const { return operations_ == 0; }

private:
    friend class ChunkStore;
    explicit Batch(ChunkStore* store);

    ChunkStore* store_;
    std::unique_ptr<rocksdb::WriteBatch> write_;
    std::vector<std::pair<ChangeOp, std::uint64_t>> changes_;
    std::uint64_t operations_ = 0;
};

// 32 hex digits of a 128-bit non-cryptographic hash of `text` (two independent 64-bit FNV-1a
// streams). Used for content addressing, never for security.
std::string content_hash(std::string_view text);

}  // namespace sluice::retrieval
