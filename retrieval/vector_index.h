#pragma once
// A FAISS vector index with stable 64-bit ids, deletes and filtered search.
//
// The index type comes from a FAISS factory string ("Flat", "HNSW32", "IVF64,PQ16", ...):
//   - IVF indexes store our ids themselves and remove in place. They need training: until enough
//     vectors have arrived (39 per list and at least 256), searches scan exactly; the first add
//     past that trains on everything held and fills the index.
//   - Flat and other code-array indexes sit in an IndexIDMap2 and remove in place.
//   - HNSW cannot remove: a deleted id becomes a tombstone that the search's IDSelector skips,
//     and past `rebuild_tombstone_ratio` a background thread rebuilds the graph from the live
//     vectors and swaps it in under a short exclusive lock, so queries never wait on the build.
// Filters run inside the FAISS search through an IDSelector. A caller that can name a superset
// of the admitted ids (Index, from FilterPostings) passes a CandidateSource: when it names at
// most exact_scan_budget() ids the search scans exactly those. Otherwise the filter is an opaque
// predicate, so a filtered search first estimates its selectivity from a sample of the indexed
// vectors at pseudo-random positions (it stops early once enough of them pass, so a loose filter
// costs a few dozen calls). About exact_scan_budget() admitted vectors or fewer (the plan by
// estimated cost; when the source's lists named more than the budget, only below the HNSW
// walk's recall floor, since the lists outweigh a noisy sample): the search scans them exactly,
// as Qdrant's full-scan threshold does (a graph walk under a tight filter meets few admitted
// vectors and returns poor or partial results).
// More: the walk gets efSearch / selectivity (at most `filter_max_ef`) as its efSearch. With
// FAISS 1.7 that only lifts the walk's early stop (the beam stays the index's efSearch; see
// set_hnsw_ef_search). When FAISS still returns fewer than k (the walk "ran dry"), the search
// scans exactly: the CandidateSource's ids when it can name at most half the index, else every
// vector through the predicate (so does a scan planned from the sample); so a query returns
// min(k, matching) results at any selectivity.
//
// The live vectors are also kept in memory (they feed exact scans, IVF training and HNSW
// rebuilds): memory is about twice the raw vectors for Flat, and raw vectors plus codes for
// compressed indexes.
//
// Writes come one at a time (add, remove) or as batches (add_batch, remove_batch): a batch is
// one FAISS add and one FAISS removal, which is what a bulk load and the sync engine's writes of
// hundreds of chunks want.
//
// Snapshots: save() writes the FAISS index with a header (format, settings, the chunk-store
// sequence it reflects) to a temporary file, fsyncs it and renames it over the old snapshot.
//
// Thread safety: thread-safe. search() takes a shared lock; add/remove/save an exclusive one.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/result.h"
#include "retrieval/candidate_list.h"
#include "retrieval/embedder.h"
#include "retrieval/lexical_index.h"

namespace faiss {
struct Index;
}

namespace sluice::retrieval {

namespace detail {
class RwLock;
}

enum class Metric { kInnerProduct, kCosine, kL2 };

std::string_view metric_name(Metric metric);
Result<Metric> parse_metric(std::string_view name);

struct VectorIndexOptions {
    std::string factory = "Flat";
    Metric metric = Metric::kCosine;
    std::size_t dimension = 0;
    double rebuild_tombstone_ratio = 0.2;  // HNSW: rebuild past this share of tombstones
    std::size_t rebuild_min_vectors = 1000;  // ...when the index holds at least this many
    // Recall@10 >= 0.95 at the least search time (docs/benchmarks.md, Retrieval: at 100,000 x
    // 384, efConstruction 40 needs efSearch 128 for 0.98 and reaches only 0.91 at 200,000;
    // efConstruction 100 gives 1.000 at efSearch 64 for the same query time, and halves the
    // build rate). Factory strings cannot set efConstruction.
    int hnsw_ef_search = 64;
    int hnsw_ef_construction = 100;
    // Filtered search plan (see search() and exact_scan_budget()): never scan more than this
    // many admitted vectors exactly, whatever the cost model says (tests force plans with it)...
    std::size_t filter_exact_max = std::numeric_limits<std::size_t>::max();
    // ...and give the HNSW walk efSearch / selectivity, up to this. It also sets the walk's
    // recall floor (selectivity efSearch / filter_max_ef, below which the scan is the plan):
    // at 2,048 that floor sent a 10% filter at 1M x 384 and efSearch 256 to a 100,000-vector
    // scan (p99 32 ms) where FAISS's filtered walk kept recall 0.968 at p99 12 ms; the walk
    // loses recall near 1% (docs/benchmarks.md, 1M x 384).
    int filter_max_ef = 8192;
    std::size_t ivf_nprobe = 16;
    // OpenMP threads of one FAISS add over a batch (add_batch). 1 leaves the other cores to
    // queries (an index being written is also being searched); a bulk load with nothing else
    // running (a benchmark build, an offline import) may use every core.
    int add_threads = 1;
};

class VectorIndex {
public:
    // kInvalidArgument when the factory string is not one validate_vector_factory() accepts
    // (vector_factory.h), FAISS rejects it, or the dimension is not 1 to 65536.
    static Result<std::unique_ptr<VectorIndex>> create(const VectorIndexOptions& options);
    // Loads a snapshot written by save(); `sequence` receives the chunk-store sequence it
    // reflects. kNotFound when there is none, kDataLoss when it is corrupt, kFailedPrecondition
    // when its settings differ from `options`. The caller then adds the live vectors with
    // restore_live() and replays the changes after `sequence`.
    static Result<std::unique_ptr<VectorIndex>> load(const std::filesystem::path& path,
                                                     const VectorIndexOptions& options,
                                                     std::uint64_t& sequence);
    ~VectorIndex();
    VectorIndex(const VectorIndex&) = delete;
    VectorIndex& operator=(const VectorIndex&) = delete;

    // Adds or replaces the vector of `id`. kInvalidArgument on a wrong dimension.
    Status add(std::uint64_t id, const Vector& vector);
    // Adds or replaces the vectors of `ids` (`vectors[i]` for `ids[i]`; of equal ids the last
    // wins): the replaced ones leave FAISS in one removal and the batch enters it in ONE FAISS
    // add, which HNSW spreads over `add_threads` threads. kInvalidArgument on a wrong dimension
    // or lengths that differ; nothing changes then.
    Status add_batch(const std::vector<std::uint64_t>& ids, const std::vector<Vector>& vectors);
    // Removes `id` (a no-op when absent).
    Status remove(std::uint64_t id);
    // Removes `ids` (absent ones are skipped) in one FAISS removal: a code array compacts once
    // for the whole batch instead of once per id.
    Status remove_batch(const std::vector<std::uint64_t>& ids);
    // After load(): hands the live vector of `id` to the index without touching FAISS (the
    // snapshot may hold it already). Then replay() the changes after the snapshot's sequence,
    // then finish_restore().
    void restore_live(std::uint64_t id, Vector vector);
    // Replays the chunk changes logged after the snapshot: `added` ids that are still live and
    // absent from FAISS go in (one add), `removed` ids that are no longer live go out (one
    // removal). Order does not matter: chunk ids are never reused, so an id is added at most
    // once and removed at most once after, and the live set already holds the final state.
    Status replay(const std::vector<std::uint64_t>& added,
                  const std::vector<std::uint64_t>& removed);
    // Safety net after a replay: ids FAISS holds without a live vector are removed, live vectors
    // FAISS lacks are added. Returns how many it had to fix (0 after a complete replay).
    Result<std::size_t> finish_restore();

    // How a search was answered, for benchmarks and tests.
    struct SearchPlan {
        bool exact = false;        // scanned the admitted vectors (planned, or the walk ran dry)
        bool ran_dry = false;      // the walk (or IVF probe) returned fewer than k, then scanned
        double selectivity = 1;    // the sampled estimate; 1 without a filter
        int ef_search = 0;         // efSearch given to the HNSW walk; 0 when none ran
        std::size_t candidates = 0;  // ids scanned from the caller's candidate list
        std::size_t exact_budget = 0;  // exact_scan_budget() for this query
    };
    // The most admitted vectors a filtered search scans exactly rather than walking the graph:
    // the plan chosen by estimated cost. For HNSW the walk touches about (efSearch /
    // selectivity) * 2M vectors, each about 0.3 of a scanned candidate's cost (measured, see
    // vector_index.cpp), and the scan one per admitted vector, so the scan wins below
    // sqrt(0.3 * efSearch * n * 2M) of them (11,000 at 100,000 x HNSW32 with efSearch 64,
    // 35,000 at 1M);
    // below selectivity efSearch / filter_max_ef it is the plan regardless, because the walk
    // cannot widen enough to keep its recall. Flat: every vector (the alternative scans all of
    // them); IVF: the vectors a probe reads. Capped by `filter_exact_max`. search() asks its
    // CandidateSource for at most this many candidates when it plans.
    std::size_t exact_scan_budget(std::size_t k) const;
    // The k nearest live vectors that `allow` accepts (all when null), best first; scores are
    // similarities: inner product, cosine, or 1 / (1 + squared L2 distance). `plan`, when given,
    // receives how the search was answered. `candidates`, when given with `allow`, names a
    // superset of the ids `allow` accepts (from FilterPostings): a list within the exact-scan
    // budget is scanned instead of planning from a sample, and a search that must scan
    // otherwise (a walk that ran dry, a sample that planned a scan) scans the list it names
    // within half the index instead of every vector. A scanned list touches no
    // other vector and asks `allow` about each of its ids before scoring unless it is exact.
    Result<std::vector<ScoredId>> search(const Vector& query, std::size_t k,
                                         const std::function<bool(std::uint64_t)>* allow,
                                         SearchPlan* plan = nullptr,
                                         const CandidateSource* candidates = nullptr) const;

    // Writes the snapshot atomically, tagged with `sequence`.
    Status save(const std::filesystem::path& path, std::uint64_t sequence) const;

    std::size_t size() const;
    std::size_t tombstones() const;
    std::size_t rebuilds_completed() const { return rebuilds_.load(); }
    // Blocks until a running background rebuild has swapped in (tests, shutdown).
    void wait_for_rebuild();
    const VectorIndexOptions& options() const { return options_; }
    // HNSW's search beam (efSearch; raised to k when smaller), changeable while queries run
    // (takes the exclusive lock: FAISS 1.7 sizes the beam from the index itself).
    void set_hnsw_ef_search(int ef_search);
    int hnsw_ef_search() const { return ef_search_.load(); }

    // For benchmarks that time raw FAISS against this wrapper on the very same graph: the FAISS
    // index and its label -> id table (empty for IVF, which labels by id). Borrowed: valid until
    // the next write or background rebuild; the caller must not write meanwhile.
    struct FaissView {
        const faiss::Index* index = nullptr;
        const std::vector<std::uint64_t>* ids = nullptr;
    };
    FaissView borrow_faiss() const;

    enum class Kind { kIdMap, kIvf, kHnsw };
    Kind kind() const { return kind_; }

    struct Tag {};
    VectorIndex(Tag, VectorIndexOptions options);

private:
    struct State;

    Status build_empty(State& state) const;
    // [n] ids, [n, dimension] vectors (normalised for cosine), none of them in FAISS.
    Status add_to_faiss(State& state, const std::vector<std::uint64_t>& ids,
                        const float* vectors, int threads) const;
    Status add_to_faiss(State& state, std::uint64_t id, const Vector& vector) const;
    // Removes those of `ids` that FAISS holds; the rest are skipped.
    Status remove_from_faiss(State& state, const std::vector<std::uint64_t>& ids) const;
    Status maybe_train(State& state);
    std::vector<ScoredId> exact_scan(const float* query, std::size_t k,
                                     const std::function<bool(std::uint64_t)>* allow,
                                     const std::vector<std::uint64_t>* candidates = nullptr) const;
    // Scans `list` (asking `allow` unless it is exact) and records it in `plan`.
    std::vector<ScoredId> scan_candidates(const float* query, std::size_t k,
                                          const std::function<bool(std::uint64_t)>* allow,
                                          const CandidateList& list, SearchPlan& plan) const;
    // The exact answer without a list within the budget (the sample planned a scan, or a walk
    // returned fewer than k): the candidates `source` names within half the index, else every
    // vector through `allow`.
    std::vector<ScoredId> scan_listed_or_all(const float* query, std::size_t k,
                                             const std::function<bool(std::uint64_t)>* allow,
                                             const CandidateSource* source, SearchPlan& plan) const;
    double estimate_selectivity(const std::function<bool(std::uint64_t)>& allow) const;
    std::size_t exact_budget_locked(std::size_t k) const;
    // Admitted vectors below which a filtered HNSW walk loses recall (0 for other kinds).
    double walk_recall_floor_locked(std::size_t k) const;
    double similarity(const float* a, const float* b) const;
    void maybe_start_rebuild();
    void rebuild(std::stop_token stop);

    VectorIndexOptions options_;
    Kind kind_ = Kind::kIdMap;
    std::size_t train_min_ = 0;

    std::unique_ptr<detail::RwLock> mutex_;  // writer-preferring; see detail/rw_lock.h
    std::unique_ptr<State> state_;                    // GUARDED_BY(mutex_)
    std::unordered_map<std::uint64_t, Vector> live_;  // GUARDED_BY(mutex_)
    bool rebuilding_ = false;                         // GUARDED_BY(mutex_)
    std::vector<std::uint64_t> changed_during_rebuild_;  // GUARDED_BY(mutex_)
    std::atomic<std::size_t> rebuilds_{0};
    std::atomic<int> ef_search_{64};
    std::jthread rebuild_thread_;
};

}  // namespace sluice::retrieval
