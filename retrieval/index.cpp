#include "retrieval/index.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <unordered_set>

#include "common/check.h"
#include "common/log.h"
#include "retrieval/detail/rw_lock.h"

namespace sluice::retrieval {
namespace {

const char* const kSettingsKey = "index.settings";
// TextAnalyzer::kVersion of the stored term counts; absent in indexes made before it was kept,
// which version 1 analyzed.
const char* const kAnalyzerVersionKey = "index.analyzer_version";
// Chunks whose new term counts one commit of a re-analysis writes.
constexpr std::size_t kReanalyzeBatch = 1000;
// A hash of a cached embedding's key, for the sets of referenced and recently written entries:
// a collision keeps an unreferenced entry (harmless) and never deletes a referenced one, and
// 8 bytes a chunk is what a million chunks can afford.
std::size_t cache_key_hash(std::string_view embedder_id, std::string_view hash) {
    std::string key;
    key.reserve(embedder_id.size() + 1 + hash.size());
    key.append(embedder_id).push_back('\0');
    key.append(hash);
    return std::hash<std::string>{}(key);
}

// snapshot() prunes the embedding cache once this many chunks, and a quarter of the live ones,
// were removed since the last prune.
constexpr std::size_t kPruneMinimumRemoved = 1000;
const char* const kSnapshotFile = "vectors.snap";
const char* const kStoreFolder = "store";

// Text both rankers see for a chunk: the document title and section headings carry meaning
// that the chunk's own words may not repeat (BEIR's BM25 baselines index title + text too).
std::string ranking_text(const Chunk& chunk) {
    std::string out = chunk.title;
    for (const auto& heading : chunk.section_path) {
        out += "\n" + heading;
    }
    out += "\n" + chunk.text;
    return out;
}

// A field of the fingerprint with its separator bytes (and the escape byte itself) escaped, so
// that values holding them cannot shift what belongs to which field: "a\x1f" + "b" and "a" +
// "\x1fb" would otherwise fingerprint alike, and a changed document (an ACL among its fields)
// would be skipped as unchanged. Text without these bytes, nearly all of it, is unchanged, and
// so are the fingerprints stored before the escape.
std::string fingerprint_field(std::string_view value) {
    if (value.find_first_of("\x1d\x1e\x1f") == std::string_view::npos) {
        return std::string(value);
    }
    std::string out;
    out.reserve(value.size() + 8);
    for (char c : value) {
        if (c == '\x1d' || c == '\x1e' || c == '\x1f') {
            out += '\x1d';
            out += static_cast<char>('0' + (c - '\x1d'));
        } else {
            out += c;
        }
    }
    return out;
}

std::string document_fingerprint(const Document& doc) {
    std::string out = fingerprint_field(doc.uri) + '\x1f' + fingerprint_field(doc.title) + '\x1f' +
                      fingerprint_field(doc.text) + '\x1f';
    for (const auto& [name, value] : doc.metadata) {
        // An integer is marked: 2020 and 2020.0 print alike, and a document an earlier build
        // stored with the float must be written again when the integer arrives. Text and floats
        // hash as before, so that unchanged documents stay unchanged across the upgrade. A
        // boolean needs no mark: true and false print as no number or (quoted) text does, so a
        // document stored with 1.0 or, from a source, "true" is written again too.
        const bool integer = std::holds_alternative<std::int64_t>(value);
        out += fingerprint_field(name) + '\x1e' + (integer ? "i:" : "") +
               fingerprint_field(describe_value(value)) + '\x1f';
    }
    for (const auto& principal : doc.acl.principals) {
        out += "p:" + fingerprint_field(principal) + '\x1f';
    }
    for (const auto& group : doc.acl.groups) {
        out += "g:" + fingerprint_field(group) + '\x1f';
    }
    out.append(reinterpret_cast<const char*>(doc.vector.data()), doc.vector.size() * sizeof(float));
    return content_hash(out);
}

}  // namespace

Result<std::shared_ptr<const Embedder>> default_embedder_factory(const IndexSettings& settings) {
    if (settings.embedder == "lexical-hash") {
        return std::shared_ptr<const Embedder>(
            std::make_shared<LexicalHashEmbedder>(settings.dimension));
    }
    if (settings.embedder == "none") {
        return std::shared_ptr<const Embedder>();
    }
    return not_supported("embedder '" + settings.embedder +
                         "' is not available in this process (app/ provides http and model)");
}

namespace detail {

// One document after chunking and embedding, before it is committed.
struct PreparedDocument {
    Document doc;
    std::string fingerprint;
    // Same fingerprint as the stored record when prepare() read it: nothing to write, and no
    // chunks were made.
    bool unchanged = false;
    // The stored record as prepare() read it; commit() reuses it when nothing was committed
    // since (the store's sequence is unchanged), saving a second read of every document.
    std::optional<DocumentRecord> stored;
    std::vector<Chunk> chunks;
    std::vector<TermCounts> terms;
    std::vector<Vector> vectors;            // empty vector: the chunk has none
    std::vector<std::uint8_t> cache_write;  // 1: a fresh embedding to store in the cache
};

}  // namespace detail

using detail::PreparedDocument;

PreparedWrite::PreparedWrite() = default;
PreparedWrite::~PreparedWrite() = default;
PreparedWrite::PreparedWrite(PreparedWrite&&) noexcept = default;
PreparedWrite& PreparedWrite::operator=(PreparedWrite&&) noexcept = default;

namespace {

Status check_write(const std::vector<std::string>& upsert_keys,
                   const std::vector<std::string>& removes,
                   const std::vector<std::pair<std::string, std::string>>& meta) {
    std::set<std::string> removing(removes.begin(), removes.end());
    for (const std::string& key : upsert_keys) {
        if (removing.count(key) != 0) {
            return invalid_argument("key '" + key + "' is both upserted and removed");
        }
    }
    for (const auto& [name, value] : meta) {
        if (name.empty() || name.rfind("index.", 0) == 0 || name.rfind("store.", 0) == 0) {
            return invalid_argument("meta record name '" + name + "' is reserved or empty");
        }
    }
    return Status::ok_status();
}

}  // namespace

Index::Index(Tag, std::filesystem::path dir, IndexSettings settings)
    : dir_(std::move(dir)),
      settings_(std::move(settings)),
      mutex_(std::make_unique<detail::RwLock>()) {}

Index::~Index() {
    wait_for_background_work();
    bool stale = false;
    {
        std::shared_lock lock(*mutex_);
        stale = store_ && vectors_ && store_->sequence() != snapshot_sequence_;
    }
    if (stale) {
        Status saved = snapshot();
        if (!saved.ok()) {
            log::error("retrieval", "vector snapshot on close failed; the next open replays",
                       {{"index", settings_.name}, {"error", saved.message()}});
        }
    }
}

void Index::wait_for_background_work() {
    if (vectors_) {
        vectors_->wait_for_rebuild();
    }
}

Result<std::unique_ptr<Index>> Index::create(const std::filesystem::path& dir,
                                             const IndexSettings& settings,
                                             const IndexDeps& deps) {
    SLUICE_RETURN_IF_ERROR(validate(settings));
    std::error_code ec;
    if (std::filesystem::exists(dir / kStoreFolder, ec)) {
        return Status(StatusCode::kAlreadyExists,
                      "index '" + settings.name + "' already exists at '" + dir.string() + "'");
    }
    // The resolved width is what is stored: an index's width never changes after creation, so
    // that a later checkpoint of another width is refused when the index opens.
    IndexSettings stored = settings;
    if (stored.dimension == kEmbedderDimension) {
        SLUICE_ASSIGN_OR_RETURN(auto embedder, deps.embedders(stored));
        if (!embedder) {
            return invalid_argument("index '" + settings.name + "': embedder '" +
                                    settings.embedder + "' has no width of its own: give a "
                                    "dimension");
        }
        stored.dimension = embedder->dimension();
        // Now the checks that needed the width (PQ's m divides it).
        SLUICE_RETURN_IF_ERROR(validate(stored));
    }
    SLUICE_ASSIGN_OR_RETURN(auto store, ChunkStore::open(dir / kStoreFolder));
    auto batch = store->batch();
    batch.put_meta(kSettingsKey, encode_settings(stored));
    batch.put_meta(kAnalyzerVersionKey, std::to_string(TextAnalyzer::kVersion));
    SLUICE_RETURN_IF_ERROR(store->commit(batch));
    store.reset();
    return open(dir, deps);
}

Result<std::unique_ptr<Index>> Index::open(const std::filesystem::path& dir,
                                           const IndexDeps& deps) {
    std::error_code ec;
    if (!std::filesystem::exists(dir / kStoreFolder / "CURRENT", ec)) {
        return not_found("no index at '" + dir.string() + "'");
    }
    SLUICE_ASSIGN_OR_RETURN(auto store, ChunkStore::open(dir / kStoreFolder));
    SLUICE_ASSIGN_OR_RETURN(auto encoded, store->get_meta(kSettingsKey));
    if (!encoded) {
        return data_loss("index at '" + dir.string() + "' has no settings record");
    }
    SLUICE_ASSIGN_OR_RETURN(IndexSettings settings, decode_settings(*encoded));
    // Settings an earlier build let through (a factory string FAISS crashes on) fail this index
    // alone; building it would take the process down at every start.
    if (Status valid = validate(settings); !valid.ok()) {
        return failed_precondition("index at '" + dir.string() +
                                   "' has settings this build refuses: " + valid.message());
    }
    auto index = std::make_unique<Index>(Tag{}, dir, settings);
    index->store_ = std::move(store);
    SLUICE_ASSIGN_OR_RETURN(index->analyzer_, TextAnalyzer::create(settings.language));
    SLUICE_ASSIGN_OR_RETURN(index->embedder_, deps.embedders(settings));
    if (index->embedder_ && index->embedder_->dimension() != settings.dimension) {
        return failed_precondition("index '" + settings.name + "' has dimension " +
                                   std::to_string(settings.dimension) + ", its embedder '" +
                                   index->embedder_->id() + "' produces " +
                                   std::to_string(index->embedder_->dimension()));
    }
    index->tokens_ = deps.tokens ? deps.tokens : std::make_shared<ApproxTokenCounter>();
    SLUICE_RETURN_IF_ERROR(index->load().with_context("opening index '" + settings.name + "'"));
    return index;
}

void Index::add_info(const Chunk& chunk) {
    ChunkInfo info;
    info.metadata = chunk.metadata;
    // The chunk's own values win over metadata of the same names, which upserts refuse but an
    // index written before may hold.
    info.metadata.insert_or_assign("doc_key", chunk.doc_key);
    info.metadata.insert_or_assign("uri", chunk.uri);
    info.metadata.insert_or_assign("title", chunk.title);
    info.acl = chunk.acl;
    postings_.add(chunk.id, info.metadata, info.acl);
    chunks_[chunk.id] = std::move(info);
}

Result<int> Index::stored_analyzer_version() const {
    SLUICE_ASSIGN_OR_RETURN(auto stored, store_->get_meta(kAnalyzerVersionKey));
    if (!stored) {
        return 1;
    }
    int version = 0;
    const char* end = stored->data() + stored->size();
    auto [ptr, ec] = std::from_chars(stored->data(), end, version);
    if (ec != std::errc() || ptr != end || version < 1) {
        return data_loss("index '" + settings_.name + "': malformed analyzer version '" + *stored +
                         "'");
    }
    if (version > TextAnalyzer::kVersion) {
        return failed_precondition(
            "index '" + settings_.name + "' was analyzed by version " + std::to_string(version) +
            " of the text analyzer; this build has " + std::to_string(TextAnalyzer::kVersion) +
            " (a newer build made it)");
    }
    return version;
}

Status Index::load() {
    std::unique_lock lock(*mutex_);
    const auto options = vector_options(settings_);
    std::uint64_t snapshot_seq = 0;
    auto loaded = VectorIndex::load(dir_ / kSnapshotFile, options, snapshot_seq);
    bool from_snapshot = loaded.ok();
    if (loaded.ok()) {
        vectors_ = std::move(loaded).value();
    } else {
        if (loaded.status().code() != StatusCode::kNotFound) {
            log::warn("retrieval", "ignoring vector snapshot; rebuilding from the chunk store",
                      {{"index", settings_.name}, {"error", loaded.status().message()}});
        }
        snapshot_seq = 0;
        SLUICE_ASSIGN_OR_RETURN(vectors_, VectorIndex::create(options));
    }
    SLUICE_ASSIGN_OR_RETURN(const int analyzed_with, stored_analyzer_version());
    // Terms made by another analysis would not match the queries' terms: re-analyze every chunk
    // from its stored text, in batches, recording the version with the last one (a crash before
    // it re-analyzes again on the next open).
    const bool reanalyze = analyzed_with != TextAnalyzer::kVersion;
    if (reanalyze) {
        log::info("retrieval", "re-analyzing the index's terms",
                  {{"index", settings_.name},
                   {"from_version", analyzed_with},
                   {"to_version", TextAnalyzer::kVersion}});
    }
    auto terms_batch = store_->batch();
    std::size_t batched = 0;
    std::size_t missing_vectors = 0;
    Status visit_status;
    SLUICE_RETURN_IF_ERROR(
        store_->for_each_chunk([&](const Chunk& chunk, const TermCounts& stored) {
            if (reanalyze) {
                TermCounts terms = count_terms(analyzer_->analyze(ranking_text(chunk)));
                terms_batch.put_terms(chunk.id, terms);
                lexical_.add(chunk.id, terms);
                if (++batched % kReanalyzeBatch == 0) {
                    visit_status = store_->commit(terms_batch);
                    if (!visit_status.ok()) {
                        return false;
                    }
                }
            } else {
                lexical_.add(chunk.id, stored);
            }
            add_info(chunk);
            if (chunk.vector_source.empty()) {
                return true;
            }
            auto vector = store_->get_embedding(chunk.vector_source, chunk.content_hash);
            if (!vector.ok()) {
                visit_status = vector.status();
                return false;
            }
            if (!vector->has_value() || (*vector)->size() != settings_.dimension) {
                ++missing_vectors;
                return true;
            }
            Vector v = std::move(**vector);
            if (settings_.metric == Metric::kCosine) {
                l2_normalize(v);
            }
            vectors_->restore_live(chunk.id, std::move(v));
            return true;
        }));
    SLUICE_RETURN_IF_ERROR(visit_status);
    if (reanalyze) {
        terms_batch.put_meta(kAnalyzerVersionKey, std::to_string(TextAnalyzer::kVersion));
        SLUICE_RETURN_IF_ERROR(store_->commit(terms_batch));
        log::info("retrieval", "re-analyzed the index's terms",
                  {{"index", settings_.name}, {"chunks", batched}});
    }
    if (missing_vectors > 0) {
        log::warn("retrieval", "chunks without a cached vector are searchable lexically only",
                  {{"index", settings_.name}, {"chunks", missing_vectors}});
    }
    documents_ = 0;
    SLUICE_RETURN_IF_ERROR(store_->for_each_document([&](const DocumentRecord&) {
        ++documents_;
        return true;
    }));
    // The changes after the snapshot go back into FAISS as one removal and one add (see
    // VectorIndex::replay for why their order does not matter).
    std::vector<std::uint64_t> replay_added;
    std::vector<std::uint64_t> replay_removed;
    SLUICE_RETURN_IF_ERROR(store_->for_each_change_after(
        snapshot_seq, [&](std::uint64_t, ChangeOp op, std::uint64_t id) {
            (op == ChangeOp::kAdd ? replay_added : replay_removed).push_back(id);
        }));
    const std::size_t replayed = replay_added.size() + replay_removed.size();
    SLUICE_RETURN_IF_ERROR(vectors_->replay(replay_added, replay_removed));
    SLUICE_ASSIGN_OR_RETURN(std::size_t fixed, vectors_->finish_restore());
    if (from_snapshot && fixed > 0) {
        log::warn("retrieval", "vector snapshot disagreed with the chunk store; reconciled",
                  {{"index", settings_.name}, {"vectors", fixed}});
    }
    snapshot_sequence_ = from_snapshot ? snapshot_seq : 0;
    log::info("retrieval", "index opened",
              {{"index", settings_.name},
               {"chunks", chunks_.size()},
               {"snapshot_sequence", snapshot_seq},
               {"replayed_changes", replayed}});
    return Status::ok_status();
}

Result<std::vector<PreparedDocument>> Index::prepare_documents(
    const std::vector<Document>& documents, double* embed_seconds) const {
    // The last of equal keys wins, as if they had been upserted one after another.
    std::map<std::string, std::size_t> last_of;
    for (std::size_t i = 0; i < documents.size(); ++i) {
        if (documents[i].key.empty()) {
            return invalid_argument("document " + std::to_string(i) + " has an empty key");
        }
        SLUICE_RETURN_IF_ERROR(validate_metadata(documents[i]));
        last_of[documents[i].key] = i;
    }
    std::vector<PreparedDocument> out;
    std::vector<std::string> to_embed;
    std::vector<std::pair<std::size_t, std::size_t>> embed_slots;  // (document, chunk)
    for (std::size_t i = 0; i < documents.size(); ++i) {
        const Document& doc = documents[i];
        if (last_of[doc.key] != i) {
            continue;
        }
        if (!doc.vector.empty() && doc.vector.size() != settings_.dimension) {
            return invalid_argument("document '" + doc.key + "': vector of " +
                                    std::to_string(doc.vector.size()) + " floats, expected " +
                                    std::to_string(settings_.dimension));
        }
        // An infinite or NaN component makes every score with the vector NaN (cosine
        // normalises infinity to NaN), which no ranking can order.
        SLUICE_RETURN_IF_ERROR(check_finite(doc.vector, "document '" + doc.key + "': vector"));
        PreparedDocument prepared;
        prepared.doc = doc;
        prepared.fingerprint = document_fingerprint(doc);
        SLUICE_ASSIGN_OR_RETURN(prepared.stored, store_->get_document(doc.key));
        if (prepared.stored && prepared.stored->text_hash == prepared.fingerprint) {
            prepared.unchanged = true;
            out.push_back(std::move(prepared));
            continue;
        }
        std::vector<ChunkSpan> spans;
        if (settings_.chunking) {
            spans = chunk_text(doc.text, *tokens_, settings_.chunk);
        }
        if (spans.empty()) {
            spans.push_back(ChunkSpan{0, doc.text.size(), {}});
        }
        if (!doc.vector.empty() && spans.size() > 1) {
            return invalid_argument("document '" + doc.key + "' comes with a vector but splits into " +
                                    std::to_string(spans.size()) +
                                    " chunks; send chunk-sized documents or no vector");
        }
        for (std::uint32_t ordinal = 0; ordinal < spans.size(); ++ordinal) {
            const ChunkSpan& span = spans[ordinal];
            Chunk chunk;
            chunk.doc_key = doc.key;
            chunk.ordinal = ordinal;
            chunk.uri = doc.uri;
            chunk.title = doc.title;
            chunk.section_path = span.section_path;
            chunk.char_begin = span.begin;
            chunk.char_end = span.end;
            chunk.text = doc.text.substr(span.begin, span.end - span.begin);
            chunk.metadata = doc.metadata;
            chunk.acl = doc.acl;
            std::string ranked = ranking_text(chunk);
            prepared.terms.push_back(count_terms(analyzer_->analyze(ranked)));
            Vector vector;
            std::uint8_t fresh = 0;
            if (!doc.vector.empty()) {
                chunk.vector_source = "caller";
                std::string keyed = ranked;
                keyed.append(reinterpret_cast<const char*>(doc.vector.data()),
                             doc.vector.size() * sizeof(float));
                chunk.content_hash = content_hash(keyed);
                vector = doc.vector;
                fresh = 1;
            } else if (embedder_) {
                chunk.vector_source = embedder_->id();
                chunk.content_hash = content_hash(ranked);
                SLUICE_ASSIGN_OR_RETURN(auto cached,
                                        store_->get_embedding(chunk.vector_source,
                                                              chunk.content_hash));
                if (cached && cached->size() == settings_.dimension) {
                    vector = std::move(*cached);
                } else {
                    to_embed.push_back(std::move(ranked));
                    embed_slots.emplace_back(out.size(), prepared.chunks.size());
                    fresh = 1;
                }
            } else {
                chunk.content_hash = content_hash(ranked);
            }
            prepared.chunks.push_back(std::move(chunk));
            prepared.vectors.push_back(std::move(vector));
            prepared.cache_write.push_back(fresh);
        }
        out.push_back(std::move(prepared));
    }
    if (!to_embed.empty()) {
        const auto embed_start = std::chrono::steady_clock::now();
        SLUICE_ASSIGN_OR_RETURN(auto vectors, embed_all(*embedder_, to_embed));
        *embed_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                        embed_start)
                              .count();
        for (std::size_t i = 0; i < vectors.size(); ++i) {
            auto [doc, chunk] = embed_slots[i];
            out[doc].vectors[chunk] = std::move(vectors[i]);
        }
    }
    return out;
}

Result<UpsertStats> Index::upsert(const std::vector<Document>& documents) {
    SLUICE_ASSIGN_OR_RETURN(ApplyStats stats, apply(IndexWrite{documents, {}, {}}));
    return stats.upserts;
}

Result<std::size_t> Index::remove(const std::vector<std::string>& keys) {
    SLUICE_ASSIGN_OR_RETURN(ApplyStats stats, apply(IndexWrite{{}, keys, {}}));
    return stats.removed;
}

Result<PreparedWrite> Index::prepare(const IndexWrite& write) const {
    using Clock = std::chrono::steady_clock;
    std::vector<std::string> upsert_keys;
    upsert_keys.reserve(write.upserts.size());
    for (const Document& doc : write.upserts) {
        upsert_keys.push_back(doc.key);
    }
    SLUICE_RETURN_IF_ERROR(check_write(upsert_keys, write.removes, write.meta));
    PreparedWrite out;
    // Read before the lookups: a commit after it (which may or may not be seen by them) moves
    // the sequence, and commit() then reads again.
    out.read_at_ = store_->sequence();
    const auto prepare_start = Clock::now();
    SLUICE_ASSIGN_OR_RETURN(out.documents_, prepare_documents(write.upserts, &out.embed_seconds));
    out.prepare_seconds = std::chrono::duration<double>(Clock::now() - prepare_start).count();
    out.removes = write.removes;
    out.meta = write.meta;
    return out;
}

Result<ApplyStats> Index::apply(const IndexWrite& write) {
    // Chunking and embedding (possibly a remote call) run before the lock, so queries go on.
    SLUICE_ASSIGN_OR_RETURN(PreparedWrite prepared, prepare(write));
    return commit(std::move(prepared));
}

Status Index::refresh_unchanged(PreparedWrite& prepared, double* embed_seconds) const {
    if (store_->sequence() == prepared.read_at_) {
        return Status::ok_status();
    }
    std::vector<Document> again;
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < prepared.documents_.size(); ++i) {
        const PreparedDocument& p = prepared.documents_[i];
        if (!p.unchanged) {
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(auto stored, store_->get_document(p.doc.key));
        if (!stored || stored->text_hash != p.fingerprint) {
            again.push_back(p.doc);
            slots.push_back(i);
        }
    }
    if (again.empty()) {
        return Status::ok_status();
    }
    // Rare (a write in between changed a document this one restores), so it runs under the
    // lock rather than in a retry loop that concurrent writers could keep failing.
    SLUICE_ASSIGN_OR_RETURN(auto fresh, prepare_documents(again, embed_seconds));
    SLUICE_CHECK(fresh.size() == slots.size(), "re-prepared documents do not match their slots");
    for (std::size_t i = 0; i < slots.size(); ++i) {
        prepared.documents_[slots[i]] = std::move(fresh[i]);
    }
    return Status::ok_status();
}

Result<ApplyStats> Index::commit(PreparedWrite prepared) {
    using Clock = std::chrono::steady_clock;
    std::vector<std::string> upsert_keys;
    upsert_keys.reserve(prepared.documents_.size());
    for (const PreparedDocument& p : prepared.documents_) {
        upsert_keys.push_back(p.doc.key);
    }
    SLUICE_RETURN_IF_ERROR(check_write(upsert_keys, prepared.removes, prepared.meta));
    const std::set<std::string> removing(prepared.removes.begin(), prepared.removes.end());
    ApplyStats out;
    out.prepare_seconds = prepared.prepare_seconds;
    out.embed_seconds = prepared.embed_seconds;
    const auto commit_start = Clock::now();
    UpsertStats& stats = out.upserts;
    std::unique_lock lock(*mutex_);
    double refresh_embed_seconds = 0;
    SLUICE_RETURN_IF_ERROR(refresh_unchanged(prepared, &refresh_embed_seconds));
    out.embed_seconds += refresh_embed_seconds;
    out.prepare_seconds += refresh_embed_seconds;
    // Commits happen under this lock: an unchanged sequence means prepare()'s reads are current.
    const bool reads_current = store_->sequence() == prepared.read_at_;
    auto batch = store_->batch();
    std::vector<std::uint64_t> removed;
    std::size_t new_documents = 0;
    for (PreparedDocument& p : prepared.documents_) {
        if (p.unchanged) {
            ++stats.unchanged;
            continue;
        }
        ++stats.documents;
        std::optional<DocumentRecord> stored = std::move(p.stored);
        if (!reads_current) {
            // A concurrent upsert of the same key may have committed since prepare().
            SLUICE_ASSIGN_OR_RETURN(stored, store_->get_document(p.doc.key));
        }
        if (stored) {
            for (auto id : stored->chunk_ids) {
                batch.delete_chunk(id);
                removed.push_back(id);
            }
        } else {
            ++new_documents;
        }
        // The document is not needed after this: its parts move into the record.
        DocumentRecord record{p.doc.key,
                              std::move(p.doc.uri),
                              std::move(p.doc.title),
                              std::move(p.doc.metadata),
                              std::move(p.doc.acl),
                              std::move(p.fingerprint),
                              {}};
        for (std::size_t i = 0; i < p.chunks.size(); ++i) {
            Chunk& chunk = p.chunks[i];
            chunk.id = batch.reserve_chunk_id();
            record.chunk_ids.push_back(chunk.id);
            batch.put_chunk(chunk, p.terms[i]);
            if (prune_running_ && !chunk.vector_source.empty()) {
                prune_touched_.insert(cache_key_hash(chunk.vector_source, chunk.content_hash));
            }
            if (p.cache_write[i] != 0) {
                batch.put_embedding(chunk.vector_source, chunk.content_hash, p.vectors[i]);
                stats.embedded += chunk.vector_source == "caller" ? 0 : 1;
            } else if (!chunk.vector_source.empty()) {
                // Stored again: a prune of the cache since prepare() may have deleted it.
                batch.put_embedding(chunk.vector_source, chunk.content_hash, p.vectors[i]);
                ++stats.embedding_cache_hits;
            }
        }
        batch.put_document(record);
    }
    std::size_t found = 0;
    for (const auto& key : removing) {
        SLUICE_ASSIGN_OR_RETURN(auto stored, store_->get_document(key));
        if (!stored) {
            continue;
        }
        ++found;
        for (auto id : stored->chunk_ids) {
            batch.delete_chunk(id);
            removed.push_back(id);
        }
        batch.delete_document(key);
    }
    for (const auto& [name, value] : prepared.meta) {
        batch.put_meta(name, value);
    }
    out.removed = found;
    if (batch.empty()) {
        out.sequence = store_->sequence();
        return out;
    }
    SLUICE_RETURN_IF_ERROR(store_->commit(batch));
    out.sequence = store_->sequence();
    // The store holds the change; a failure below leaves memory behind the store, which the
    // next open() repairs, so it is reported as internal.
    // The vector index takes the whole write as one removal and one FAISS add.
    for (auto id : removed) {
        lexical_.remove(id);
        auto info = chunks_.find(id);
        if (info != chunks_.end()) {
            postings_.remove(id, info->second.metadata, info->second.acl);
            chunks_.erase(info);
        }
    }
    SLUICE_RETURN_IF_ERROR(vectors_->remove_batch(removed));
    stats.chunks_removed = removed.size();
    removed_since_prune_ += removed.size();
    std::vector<std::uint64_t> vector_ids;
    std::vector<Vector> vectors;
    for (PreparedDocument& p : prepared.documents_) {
        for (std::size_t i = 0; i < p.chunks.size(); ++i) {
            const Chunk& chunk = p.chunks[i];
            lexical_.add(chunk.id, p.terms[i]);
            add_info(chunk);
            if (!p.vectors[i].empty()) {
                vector_ids.push_back(chunk.id);
                vectors.push_back(std::move(p.vectors[i]));
            }
            ++stats.chunks_added;
        }
    }
    SLUICE_RETURN_IF_ERROR(vectors_->add_batch(vector_ids, vectors));
    documents_ += new_documents;
    documents_ -= found;
    out.commit_seconds = std::chrono::duration<double>(Clock::now() - commit_start).count();
    return out;
}

Result<std::optional<std::string>> Index::meta(const std::string& name) const {
    return store_->get_meta(name);
}

Status Index::for_each_document(const std::function<bool(const DocumentRecord&)>& visit) const {
    return store_->for_each_document(visit);
}

Result<std::vector<Chunk>> Index::chunks_of(const std::string& key) const {
    std::shared_lock lock(*mutex_);
    std::vector<Chunk> out;
    SLUICE_ASSIGN_OR_RETURN(auto record, store_->get_document(key));
    if (!record) {
        return out;
    }
    for (auto id : record->chunk_ids) {
        SLUICE_ASSIGN_OR_RETURN(auto chunk, store_->get_chunk(id));
        if (!chunk) {
            return data_loss("document '" + key + "' names chunk " + std::to_string(id) +
                             ", which the store does not hold");
        }
        out.push_back(std::move(*chunk));
    }
    return out;
}

Status Index::snapshot() {
    bool prune_due = false;
    {
        std::unique_lock lock(*mutex_);
        std::uint64_t seq = store_->sequence();
        SLUICE_RETURN_IF_ERROR(vectors_->save(dir_ / kSnapshotFile, seq));
        snapshot_sequence_ = seq;
        SLUICE_RETURN_IF_ERROR(store_->prune_changes_through(seq));
        // The cache prune scans every chunk: it waits until enough of them changed.
        prune_due = removed_since_prune_ >= std::max(kPruneMinimumRemoved, chunks_.size() / 4);
    }
    if (prune_due) {
        auto pruned = prune_embedding_cache();
        if (!pruned.ok()) {
            // The snapshot stands; the cache only stays larger than it needs to be.
            log::warn("retrieval", "pruning the embedding cache failed",
                      {{"index", settings_.name}, {"error", pruned.status().message()}});
        }
    }
    return Status::ok_status();
}

Result<std::size_t> Index::prune_embedding_cache() {
    // One prune at a time; between its two reads and its deletes, commits record what they
    // reference (prune_touched_), and those entries are spared.
    std::lock_guard prune_lock(prune_mutex_);
    std::size_t removed_before = 0;
    {
        std::unique_lock lock(*mutex_);
        prune_touched_.clear();
        prune_running_ = true;
        removed_before = removed_since_prune_;
    }
    // Ends the recording; after a whole prune, the removals it covered stop counting.
    auto stop_recording = [this, removed_before](bool done) {
        std::unique_lock lock(*mutex_);
        prune_running_ = false;
        prune_touched_.clear();
        if (done) {
            removed_since_prune_ -= removed_before;
        }
    };
    // Without the index's lock: the store's iterators read consistent views while queries and
    // commits go on.
    std::unordered_set<std::size_t> referenced;
    Status scanned = store_->for_each_chunk_vector_key(
        [&](std::string_view vector_source, std::string_view hash) {
            referenced.insert(cache_key_hash(vector_source, hash));
        });
    if (!scanned.ok()) {
        stop_recording(false);
        return scanned;
    }
    auto unreferenced =
        store_->embeddings_except([&](std::string_view embedder_id, std::string_view hash) {
            return referenced.count(cache_key_hash(embedder_id, hash)) != 0;
        });
    if (!unreferenced.ok()) {
        stop_recording(false);
        return unreferenced.status();
    }
    // Deleted in batches under the exclusive lock, so that no commit interleaves: a chunk
    // committed since the scans started is in prune_touched_, and its entry stays.
    constexpr std::size_t kDeletesPerWrite = 10000;
    std::size_t deleted = 0;
    Status written;
    for (std::size_t first = 0; first < unreferenced->size() && written.ok();
         first += kDeletesPerWrite) {
        const std::size_t last = std::min(unreferenced->size(), first + kDeletesPerWrite);
        std::unique_lock lock(*mutex_);
        std::vector<EmbeddingKey> batch;
        for (std::size_t i = first; i < last; ++i) {
            EmbeddingKey& key = (*unreferenced)[i];
            if (prune_touched_.count(cache_key_hash(key.embedder_id, key.hash)) == 0) {
                batch.push_back(std::move(key));
            }
        }
        written = store_->delete_embeddings(batch);
        if (written.ok()) {
            deleted += batch.size();
        }
    }
    stop_recording(written.ok());
    SLUICE_RETURN_IF_ERROR(written);
    log::info("retrieval", "pruned the embedding cache",
              {{"index", settings_.name}, {"deleted", deleted}, {"referenced", referenced.size()}});
    return deleted;
}

std::size_t Index::document_count() const {
    std::shared_lock lock(*mutex_);
    return documents_;
}

std::uint64_t Index::writes_since_snapshot() const {
    std::shared_lock lock(*mutex_);
    return store_->sequence() - snapshot_sequence_;
}

IndexStats Index::stats() const {
    std::shared_lock lock(*mutex_);
    IndexStats stats;
    stats.documents = documents_;
    stats.chunks = chunks_.size();
    stats.vectors = vectors_->size();
    stats.tombstones = vectors_->tombstones();
    stats.lexical_terms = lexical_.term_count();
    stats.lexical_memory_bytes = lexical_.memory_bytes();
    stats.store_disk_bytes = store_->disk_bytes();
    std::error_code ec;
    auto snapshot_bytes = std::filesystem::file_size(dir_ / kSnapshotFile, ec);
    stats.snapshot_disk_bytes = ec ? 0 : snapshot_bytes;
    stats.sequence = store_->sequence();
    stats.snapshot_sequence = snapshot_sequence_;
    return stats;
}

}  // namespace sluice::retrieval
