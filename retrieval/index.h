#pragma once
// retrieval::Index: one searchable collection of documents. It chunks what is upserted, embeds
// the chunks, keeps them in its chunk store (RocksDB, the source of truth) and serves queries
// from a BM25 lexical index and a FAISS vector index held in memory.
//
// Access control: every chunk carries its document's Acl. A query runs as a Reader; a chunk the
// reader may not read is refused by the same predicate that applies the metadata filter, inside
// both searches, before scoring: it never reaches a score, a result or a log line. When the
// filter or the reader's ACL admits few chunks (FilterPostings), the vector search scans only
// those candidates, still through the same predicate.
//
// Consistency: upsert() and remove() commit one atomic chunk-store batch, then update the
// in-memory indexes before they return, under the index's exclusive lock; a query holds the
// shared lock. So a delete is never visible after its call returns, and a query sees each write
// whole or not at all. The vector snapshot is written by snapshot(); open() loads it and replays
// the chunk-store changes committed after it.
//
// Thread safety: thread-safe. Queries run concurrently; each pins OpenMP to one thread on its
// request thread so that concurrent FAISS searches do not oversubscribe the cores.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/result.h"
#include "retrieval/chunk_store.h"
#include "retrieval/chunker.h"
#include "retrieval/embedder.h"
#include "retrieval/filter.h"
#include "retrieval/filter_postings.h"
#include "retrieval/index_settings.h"
#include "retrieval/lexical_index.h"
#include "retrieval/text_analyzer.h"
#include "retrieval/types.h"
#include "retrieval/vector_index.h"

namespace sluice::retrieval {

namespace detail {
class RwLock;
}

enum class QueryMode { kAnn, kHybrid, kLexical };

Result<QueryMode> parse_query_mode(std::string_view name);
std::string_view query_mode_name(QueryMode mode);

struct Query;
// How a hybrid `query` on an index with `settings` fuses: the query's method (weighted when it
// gives only a weight), else the index's (hybrid_fusion()); the query's weight, else the
// index's.
FusionChoice query_fusion(const Query& query, const IndexSettings& settings);

struct Query {
    std::string text;
    Vector vector;  // optional; required for kAnn when the index's embedder is "none"
    std::size_t k = 10;
    Filter filter;
    QueryMode mode = QueryMode::kHybrid;
    // Hybrid: unset takes the index's choice (hybrid_fusion()). A weight without a method means
    // weighted fusion; with the index's weighted fusion and no weight, the index's weight.
    std::optional<FusionMethod> fusion = std::nullopt;
    std::optional<double> vector_weight = std::nullopt;  // weighted fusion only, 0 to 1
    // Hybrid: how deep each ranker goes before fusion; 0 picks max(k, 100).
    std::size_t candidates = 0;
};

// The metadata field names a document may carry: none that filters or query results already
// use for something else. Refused, kInvalidArgument naming the document and the field:
//   - the built-in filter fields doc_key, uri and title (a metadata doc_key made a filter on
//     doc_key match the wrong documents); `uri` and `title` are allowed when they repeat the
//     document's own uri and title exactly, as the file connectors' titles do;
//   - the names query results give their own columns: id, chunk_id, text, section_path,
//     char_begin, char_end and score;
//   - the empty name and invalid UTF-8 (filters arrive as JSON).
// And, because answers are JSON: a key, text, title, uri or string metadata value that is not
// valid UTF-8 (kInvalidArgument; the offending bytes are not quoted).
// Names a filter cannot spell (`and`, `or`, `not`, names with a space: a filter key reads from
// its last space on as an operator) are kept, not filterable: sources name columns so.
// Index::prepare() refuses a write holding such a document; SourceSync turns it into an error
// record for its key and applies the rest of the batch.
Status validate_metadata(const Document& document);

// Builds the embedder an index's settings name. app/ supplies one that knows "http" and "model";
// default_embedder_factory knows "lexical-hash" and "none" (null: no embedder).
using EmbedderFactory =
    std::function<Result<std::shared_ptr<const Embedder>>(const IndexSettings& settings)>;
Result<std::shared_ptr<const Embedder>> default_embedder_factory(const IndexSettings& settings);

// What an index borrows from its host: embedders, and the token counter chunking measures with
// (the model's tokenizer when app/ provides one; ApproxTokenCounter when null).
struct IndexDeps {
    EmbedderFactory embedders = default_embedder_factory;
    std::shared_ptr<const TokenCounter> tokens;
};

struct UpsertStats {
    std::size_t documents = 0;       // upserted and changed
    std::size_t unchanged = 0;       // same text, metadata and acl as stored: skipped
    std::size_t chunks_added = 0;
    std::size_t chunks_removed = 0;
    std::size_t embedded = 0;        // chunks sent to the embedder
    std::size_t embedding_cache_hits = 0;
};

// A mixed write applied by Index::apply() as one atomic chunk-store batch: upserts, removes
// and named meta records (the sync engine's source checkpoint). A key may not appear both among
// the upserts and the removes; the caller decides which of the two is the last word.
struct IndexWrite {
    std::vector<Document> upserts;
    std::vector<std::string> removes;
    std::vector<std::pair<std::string, std::string>> meta;
};

namespace detail {
struct PreparedDocument;
}

// A write whose upserts Index::prepare() has chunked, analysed and embedded, ready for
// Index::commit(). Removes and meta records need no preparation: the caller may still add to
// them (the sync engine adds its checkpoint and a re-snapshot's sweep). Move-only.
class PreparedWrite {
public:
    PreparedWrite();
    ~PreparedWrite();
    PreparedWrite(PreparedWrite&&) noexcept;
    PreparedWrite& operator=(PreparedWrite&&) noexcept;
    PreparedWrite(const PreparedWrite&) = delete;
    PreparedWrite& operator=(const PreparedWrite&) = delete;

    std::vector<std::string> removes;
    std::vector<std::pair<std::string, std::string>> meta;
    double prepare_seconds = 0;  // chunking, analysis, lookups and embedding
    double embed_seconds = 0;    //   of which the embedder

private:
    friend class Index;
    std::vector<detail::PreparedDocument> documents_;
    std::uint64_t read_at_ = 0;  // the store sequence before prepare() read anything
};

struct ApplyStats {
    UpsertStats upserts;
    std::size_t removed = 0;         // removes of keys that existed
    std::uint64_t sequence = 0;      // the store sequence after the write
    double prepare_seconds = 0;      // chunking, analysis and embedding, outside the lock
    double embed_seconds = 0;        // the part of prepare_seconds spent in the embedder
    double commit_seconds = 0;       // the RocksDB write (synced) and the in-memory update
};

struct IndexStats {
    std::size_t documents = 0;
    std::size_t chunks = 0;
    std::size_t vectors = 0;
    std::size_t tombstones = 0;
    std::size_t lexical_terms = 0;
    std::size_t lexical_memory_bytes = 0;
    std::uint64_t store_disk_bytes = 0;
    std::uint64_t snapshot_disk_bytes = 0;
    std::uint64_t sequence = 0;
    std::uint64_t snapshot_sequence = 0;
};

class Index {
public:
    // Creates an index in the empty folder `dir`. kAlreadyExists when it holds one;
    // kInvalidArgument when validate(settings) refuses them. A dimension of kEmbedderDimension is
    // replaced by the embedder's width (the factory's error when it cannot build the embedder),
    // and the settings are validated again with it.
    static Result<std::unique_ptr<Index>> create(const std::filesystem::path& dir,
                                                 const IndexSettings& settings,
                                                 const IndexDeps& deps);
    // Opens an index: reloads BM25 from the stored term counts, loads the vector snapshot and
    // replays the changes after it. kNotFound when `dir` holds no index; kFailedPrecondition
    // when its stored settings fail validate() (an earlier build stored them).
    static Result<std::unique_ptr<Index>> open(const std::filesystem::path& dir,
                                               const IndexDeps& deps);
    ~Index();
    Index(const Index&) = delete;
    Index& operator=(const Index&) = delete;

    // Inserts or replaces documents by key (the last of equal keys wins). kInvalidArgument for an
    // empty key, a vector of the wrong dimension or with an infinite or NaN component, or a
    // vector on a document that splits into several chunks; nothing is written then.
    Result<UpsertStats> upsert(const std::vector<Document>& documents);
    // Deletes documents by key; returns how many existed.
    Result<std::size_t> remove(const std::vector<std::string>& keys);
    // Upserts, removes and meta records in one atomic, synced batch: after a crash either all
    // of it is in the store or none. Meta names must not collide with the index's own
    // ("index.", "store." prefixes). Errors: those of upsert(); kInvalidArgument when a key is
    // both upserted and removed or a meta name is reserved. Nothing is written on error.
    Result<ApplyStats> apply(const IndexWrite& write);
    // apply() in two halves, so that a caller can prepare the next write while one commits.
    // prepare() checks the write and chunks, analyses and embeds its upserts without the
    // index's lock: queries and commits go on, and several prepare() calls may run at once.
    // commit() writes it as apply() does. Writes committed in between are allowed: commit()
    // reads again what they may have changed, and a document that prepare() found unchanged
    // but a later write changed is prepared again under the lock, so the result is as if the
    // whole write had been applied at commit(). Errors: those of apply(); nothing is written
    // on error.
    Result<PreparedWrite> prepare(const IndexWrite& write) const;
    Result<ApplyStats> commit(PreparedWrite prepared);
    // A meta record written by apply(); nullopt when absent.
    Result<std::optional<std::string>> meta(const std::string& name) const;

    // Visits the stored documents in key order (for verification and export).
    Status for_each_document(const std::function<bool(const DocumentRecord&)>& visit) const;
    // The chunks of a document in ordinal order; empty when the key is not stored.
    Result<std::vector<Chunk>> chunks_of(const std::string& key) const;

    // The best k chunks for `query` that `reader` may read and the filter admits.
    // kInvalidArgument when the mode needs text or a vector that is missing, the vector has an
    // infinite or NaN component, or k is not in 1..1000; kFailedPrecondition for ann/hybrid on
    // an index without vectors.
    Result<std::vector<Hit>> query(const Query& query, const Reader& reader) const;

    // Writes the vector snapshot tagged with the current sequence and prunes the replay log;
    // then, once the chunks removed since the last prune reach a quarter of the live ones (at
    // least 1,000), prunes the embedding cache.
    Status snapshot();
    // Deletes the cached embeddings that no stored chunk references (left by updated and
    // deleted documents, or made by an embedder the index no longer uses); returns how many.
    // It reads the store without the index's lock, so queries and writes go on; only its
    // deletes, in batches, hold the lock. Entries that writes committed meanwhile reference are
    // kept, and a write prepared before the prune that found its vector in the cache stores
    // that vector again when it commits.
    Result<std::size_t> prune_embedding_cache();

    // Walks the in-memory structures and the files on disk: for status pages, not hot loops.
    IndexStats stats() const;
    // Cheap counters for callers that look often (the sync engine after every batch).
    std::size_t document_count() const;
    // Store writes since the last vector snapshot (what the next open would replay).
    std::uint64_t writes_since_snapshot() const;
    const IndexSettings& settings() const { return settings_; }
    const std::filesystem::path& dir() const { return dir_; }
    // For tests: waits for a background HNSW rebuild to finish.
    void wait_for_background_work();

    struct Tag {};
    Index(Tag, std::filesystem::path dir, IndexSettings settings);

private:
    struct ChunkInfo {
        Metadata metadata;  // document metadata plus doc_key, uri and title for filters
        Acl acl;
    };
    Status load();
    // TextAnalyzer::kVersion of the stored term counts (1 when the index predates the record);
    // an error for a version newer than this build's.
    Result<int> stored_analyzer_version() const;
    Result<std::vector<detail::PreparedDocument>> prepare_documents(
        const std::vector<Document>& documents, double* embed_seconds) const;
    // Under the exclusive lock: re-prepares the documents that prepare() found unchanged and a
    // commit since has changed.
    Status refresh_unchanged(PreparedWrite& prepared, double* embed_seconds) const;
    std::function<bool(std::uint64_t)> admit(const Filter& filter, const Reader& reader) const;
    void add_info(const Chunk& chunk);

    std::filesystem::path dir_;
    IndexSettings settings_;
    std::unique_ptr<ChunkStore> store_;
    std::unique_ptr<TextAnalyzer> analyzer_;
    std::shared_ptr<const Embedder> embedder_;
    std::shared_ptr<const TokenCounter> tokens_;

    std::unique_ptr<detail::RwLock> mutex_;  // writer-preferring; see detail/rw_lock.h
    LexicalIndex lexical_;                                  // GUARDED_BY(mutex_)
    std::unique_ptr<VectorIndex> vectors_;                  // GUARDED_BY(mutex_)
    std::unordered_map<std::uint64_t, ChunkInfo> chunks_;   // GUARDED_BY(mutex_)
    FilterPostings postings_;  // GUARDED_BY(mutex_); the ids of chunks_ by metadata and ACL
    std::size_t documents_ = 0;                             // GUARDED_BY(mutex_)
    std::uint64_t snapshot_sequence_ = 0;                   // GUARDED_BY(mutex_)
    std::size_t removed_since_prune_ = 0;  // GUARDED_BY(mutex_): chunks removed by commits
    // While a prune runs (prune_embedding_cache): the cache keys, hashed, of the chunks
    // committed since it started, which it must not delete.
    bool prune_running_ = false;                     // GUARDED_BY(mutex_)
    std::unordered_set<std::size_t> prune_touched_;  // GUARDED_BY(mutex_)
    std::mutex prune_mutex_;                         // one prune at a time
};

}  // namespace sluice::retrieval
