#include "retrieval/vector_index.h"

#include <cblas.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <queue>
#include <random>
#include <regex>

#include "common/log.h"
#include "retrieval/detail/rw_lock.h"
#include "retrieval/detail/codec.h"
#include "retrieval/detail/vector_index_state.h"
#include "retrieval/vector_factory.h"

namespace sluice::retrieval {

namespace {

// Asks `allow` about our id for each FAISS label; positions of removed HNSW vectors are refused
// before anything else, so a tombstone never reaches scoring.
class Selector final : public faiss::IDSelector {
public:
    Selector(const std::vector<std::uint64_t>* ids, const std::vector<std::uint8_t>* dead,
             const std::function<bool(std::uint64_t)>* allow)
        : ids_(ids), dead_(dead), allow_(allow) {}

    bool is_member(idx_t label) const override {
        auto id = static_cast<std::uint64_t>(label);
        if (ids_ != nullptr) {
            auto position = static_cast<std::size_t>(label);
            if ((*dead_)[position] != 0) {
                return false;
            }
            id = (*ids_)[position];
        }
        return allow_ == nullptr || (*allow_)(id);
    }

private:
    const std::vector<std::uint64_t>* ids_;
    const std::vector<std::uint8_t>* dead_;
    const std::function<bool(std::uint64_t)>* allow_;
};

faiss::MetricType faiss_metric(Metric metric) {
    return metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

}  // namespace

std::string_view metric_name(Metric metric) {
    switch (metric) {
        case Metric::kInnerProduct: return "inner_product";
        case Metric::kCosine: return "cosine";
        case Metric::kL2: return "l2";
    }
    return "unknown";
}

Result<Metric> parse_metric(std::string_view name) {
    if (name == "inner_product" || name == "ip" || name == "dot") {
        return Metric::kInnerProduct;
    }
    if (name == "cosine") {
        return Metric::kCosine;
    }
    if (name == "l2" || name == "euclidean") {
        return Metric::kL2;
    }
    return invalid_argument("unknown metric '" + std::string(name) +
                            "', expected inner_product, cosine or l2");
}

VectorIndex::VectorIndex(Tag, VectorIndexOptions options)
    : options_(std::move(options)),
      mutex_(std::make_unique<detail::RwLock>()),
      ef_search_(options_.hnsw_ef_search) {}

void VectorIndex::set_hnsw_ef_search(int ef_search) {
    std::unique_lock lock(*mutex_);
    ef_search_.store(ef_search);
    detail::set_faiss_ef_search(*state_->index, ef_search);
}

VectorIndex::FaissView VectorIndex::borrow_faiss() const {
    std::shared_lock lock(*mutex_);
    return FaissView{state_->index.get(), &state_->ids};
}

VectorIndex::~VectorIndex() {
    if (rebuild_thread_.joinable()) {
        rebuild_thread_.request_stop();
        rebuild_thread_.join();
    }
}

Status VectorIndex::build_empty(State& state) const {
    try {
        std::unique_ptr<faiss::Index> index(faiss::index_factory(
            static_cast<int>(options_.dimension), options_.factory.c_str(),
            faiss_metric(options_.metric)));
        // The factory turns on polysemous training for IVF-PQ, which only serves polysemous
        // Hamming filtering (never used here) and costs minutes on small training sets.
        if (auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(index.get())) {
            ivfpq->do_polysemous_training = false;
        }
        if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
            hnsw->hnsw.efConstruction = options_.hnsw_ef_construction;
            hnsw->hnsw.efSearch = ef_search_.load();
        }
        state.index = std::move(index);
    } catch (const std::exception& e) {
        return invalid_argument("faiss rejects index factory '" + options_.factory + "': " +
                                e.what());
    }
    return Status::ok_status();
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::create(const VectorIndexOptions& options) {
    if (options.dimension == 0 || options.dimension > 65536) {
        return invalid_argument("vector dimension " + std::to_string(options.dimension) +
                                ", expected 1 to 65536");
    }
    // Before FAISS sees the string: its factory accepts parameters it then crashes on.
    SLUICE_RETURN_IF_ERROR(validate_vector_factory(options.factory, options.dimension));
    auto index = std::make_unique<VectorIndex>(Tag{}, options);
    auto state = std::make_unique<State>();
    SLUICE_RETURN_IF_ERROR(index->build_empty(*state));
    faiss::Index* raw = state->index.get();
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(raw)) {
        index->kind_ = Kind::kIvf;
        index->train_min_ = std::max<std::size_t>(39 * ivf->nlist, 256);
    } else if (dynamic_cast<faiss::IndexHNSW*>(raw) != nullptr) {
        index->kind_ = Kind::kHnsw;
    } else if (dynamic_cast<faiss::IndexFlatCodes*>(raw) != nullptr) {
        index->kind_ = Kind::kIdMap;
    } else {
        return invalid_argument("index factory '" + options.factory +
                                "' builds a FAISS index this server cannot update in place; "
                                "use Flat, SQ/PQ codes, HNSW or IVF");
    }
    if (index->kind_ != Kind::kIvf && !raw->is_trained) {
        return invalid_argument("index factory '" + options.factory +
                                "' needs training; only IVF indexes are trained here");
    }
    index->state_ = std::move(state);
    return index;
}

std::size_t VectorIndex::size() const {
    std::shared_lock lock(*mutex_);
    return live_.size();
}

std::size_t VectorIndex::tombstones() const {
    std::shared_lock lock(*mutex_);
    return state_->dead_count;
}

Status VectorIndex::add_to_faiss(State& state, const std::vector<std::uint64_t>& ids,
                                 const float* vectors, int threads) const {
    if (ids.empty()) {
        return Status::ok_status();
    }
    auto n = static_cast<faiss::Index::idx_t>(ids.size());
    // The calling thread's OpenMP setting sizes FAISS's parallel regions; it goes back to one
    // thread afterwards, as every entry point expects.
    omp_set_num_threads(std::max(1, threads));
    try {
        if (kind_ == Kind::kIvf) {
            if (state.index->is_trained) {  // else held in live_ until training
                std::vector<faiss::Index::idx_t> labels(ids.begin(), ids.end());
                state.index->add_with_ids(n, vectors, labels.data());
                state.ivf_ids.insert(ids.begin(), ids.end());
            }
        } else {
            state.index->add(n, vectors);
            state.ids.reserve(state.ids.size() + ids.size());
            state.dead.reserve(state.dead.size() + ids.size());
            for (std::uint64_t id : ids) {
                state.position[id] = static_cast<std::int64_t>(state.ids.size());
                state.ids.push_back(id);
                state.dead.push_back(0);
            }
        }
    } catch (const std::exception& e) {
        omp_set_num_threads(1);
        return internal_error("faiss add of " + std::to_string(ids.size()) + " vectors (first " +
                              std::to_string(ids.front()) + "): " + e.what());
    }
    omp_set_num_threads(1);
    return Status::ok_status();
}

Status VectorIndex::add_to_faiss(State& state, std::uint64_t id, const Vector& vector) const {
    return add_to_faiss(state, std::vector<std::uint64_t>{id}, vector.data(), 1);
}

Status VectorIndex::remove_from_faiss(State& state, const std::vector<std::uint64_t>& ids) const {
    try {
        if (kind_ == Kind::kIvf) {
            std::vector<faiss::Index::idx_t> labels;
            for (std::uint64_t id : ids) {
                if (state.ivf_ids.erase(id) != 0) {
                    labels.push_back(static_cast<faiss::Index::idx_t>(id));
                }
            }
            if (!labels.empty()) {
                faiss::IDSelectorBatch batch(labels.size(), labels.data());
                state.index->remove_ids(batch);
            }
            return Status::ok_status();
        }
        std::vector<faiss::Index::idx_t> positions;
        for (std::uint64_t id : ids) {
            auto found = state.position.find(id);
            if (found == state.position.end()) {
                continue;
            }
            positions.push_back(found->second);
            state.position.erase(found);
        }
        if (positions.empty()) {
            return Status::ok_status();
        }
        if (kind_ == Kind::kHnsw) {
            for (auto position : positions) {
                state.dead[static_cast<std::size_t>(position)] = 1;
            }
            state.dead_count += positions.size();
            return Status::ok_status();
        }
        // Code arrays compact on removal, keeping the order of what stays: one pass over the
        // codes and the id table for the whole batch, then the moved positions are renumbered.
        faiss::IDSelectorBatch batch(positions.size(), positions.data());
        state.index->remove_ids(batch);
        std::sort(positions.begin(), positions.end());
        auto first = static_cast<std::size_t>(positions.front());
        std::size_t kept = first;
        std::size_t next_removed = 0;
        for (std::size_t p = first; p < state.ids.size(); ++p) {
            if (next_removed < positions.size() &&
                static_cast<std::size_t>(positions[next_removed]) == p) {
                ++next_removed;
                continue;
            }
            state.ids[kept] = state.ids[p];
            state.dead[kept] = state.dead[p];
            state.position[state.ids[kept]] = static_cast<std::int64_t>(kept);
            ++kept;
        }
        state.ids.resize(kept);
        state.dead.resize(kept);
    } catch (const std::exception& e) {
        return internal_error("faiss remove of " + std::to_string(ids.size()) + " vectors: " +
                              e.what());
    }
    return Status::ok_status();
}

Status VectorIndex::maybe_train(State& state) {
    if (kind_ != Kind::kIvf || state.index->is_trained || live_.size() < train_min_) {
        return Status::ok_status();
    }
    std::vector<float> data;
    std::vector<faiss::Index::idx_t> labels;
    data.reserve(live_.size() * options_.dimension);
    for (const auto& [id, vector] : live_) {
        data.insert(data.end(), vector.begin(), vector.end());
        labels.push_back(static_cast<faiss::Index::idx_t>(id));
    }
    try {
        auto n = static_cast<faiss::Index::idx_t>(labels.size());
        state.index->train(n, data.data());
        state.index->add_with_ids(n, data.data(), labels.data());
    } catch (const std::exception& e) {
        return internal_error("training faiss index '" + options_.factory + "' on " +
                              std::to_string(labels.size()) + " vectors: " + e.what());
    }
    for (auto label : labels) {
        state.ivf_ids.insert(static_cast<std::uint64_t>(label));
    }
    log::info("retrieval", "trained ivf index",
              {{"factory", options_.factory}, {"vectors", labels.size()}});
    return Status::ok_status();
}

// Every entry point pins OpenMP to one thread on its calling thread: requests already run in
// parallel, and FAISS's parallel regions on small batches cost more in thread wake-ups than they
// save (and oversubscribe the cores under concurrent requests). A batch add is the exception
// that `add_threads` allows.
Status VectorIndex::add(std::uint64_t id, const Vector& vector) {
    return add_batch({id}, {vector});
}

Status VectorIndex::add_batch(const std::vector<std::uint64_t>& ids,
                              const std::vector<Vector>& vectors) {
    omp_set_num_threads(1);
    if (ids.size() != vectors.size()) {
        return invalid_argument("batch of " + std::to_string(ids.size()) + " ids and " +
                                std::to_string(vectors.size()) + " vectors, expected as many");
    }
    for (std::size_t i = 0; i < vectors.size(); ++i) {
        if (vectors[i].size() != options_.dimension) {
            return invalid_argument("vector " + std::to_string(ids[i]) + " of " +
                                    std::to_string(vectors[i].size()) + " floats, expected " +
                                    std::to_string(options_.dimension));
        }
    }
    // Of equal ids the last wins; the batch keeps first-seen order.
    std::unordered_map<std::uint64_t, std::size_t> last_of;
    last_of.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        last_of[ids[i]] = i;
    }
    std::vector<std::uint64_t> batch_ids;
    batch_ids.reserve(last_of.size());
    std::vector<float> data;  // [batch, dimension], normalised for cosine
    data.reserve(last_of.size() * options_.dimension);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (last_of[ids[i]] != i) {
            continue;
        }
        batch_ids.push_back(ids[i]);
        if (options_.metric == Metric::kCosine) {
            Vector normalised = vectors[i];
            l2_normalize(normalised);
            data.insert(data.end(), normalised.begin(), normalised.end());
        } else {
            data.insert(data.end(), vectors[i].begin(), vectors[i].end());
        }
    }
    std::unique_lock lock(*mutex_);
    std::vector<std::uint64_t> replaced;
    for (std::uint64_t id : batch_ids) {
        if (live_.count(id) != 0) {
            replaced.push_back(id);
        }
    }
    SLUICE_RETURN_IF_ERROR(remove_from_faiss(*state_, replaced));
    SLUICE_RETURN_IF_ERROR(add_to_faiss(*state_, batch_ids, data.data(), options_.add_threads));
    for (std::size_t i = 0; i < batch_ids.size(); ++i) {
        const float* row = data.data() + i * options_.dimension;
        live_[batch_ids[i]] = Vector(row, row + options_.dimension);
    }
    if (rebuilding_) {
        changed_during_rebuild_.insert(changed_during_rebuild_.end(), batch_ids.begin(),
                                       batch_ids.end());
    }
    return maybe_train(*state_);
}

Status VectorIndex::remove(std::uint64_t id) {
    return remove_batch({id});
}

Status VectorIndex::remove_batch(const std::vector<std::uint64_t>& ids) {
    omp_set_num_threads(1);
    {
        std::unique_lock lock(*mutex_);
        std::vector<std::uint64_t> removed;
        for (std::uint64_t id : ids) {
            if (live_.erase(id) != 0) {
                removed.push_back(id);
            }
        }
        if (removed.empty()) {
            return Status::ok_status();
        }
        SLUICE_RETURN_IF_ERROR(remove_from_faiss(*state_, removed));
        if (rebuilding_) {
            changed_during_rebuild_.insert(changed_during_rebuild_.end(), removed.begin(),
                                           removed.end());
        }
    }
    maybe_start_rebuild();
    return Status::ok_status();
}

double VectorIndex::similarity(const float* a, const float* b) const {
    if (options_.metric == Metric::kL2) {
        return 1.0 / (1.0 + faiss::fvec_L2sqr(a, b, options_.dimension));
    }
    // OpenBLAS picks its SIMD kernel for this CPU at run time; Debian's FAISS is built for
    // baseline x86-64 and its fvec_inner_product runs the scalar reference loop (perf: 27% of
    // a candidate scan at 384 dimensions).
    return cblas_sdot(static_cast<blasint>(options_.dimension), a, 1, b, 1);
}

std::vector<ScoredId> VectorIndex::exact_scan(
    const float* query, std::size_t k, const std::function<bool(std::uint64_t)>* allow,
    const std::vector<std::uint64_t>* candidates) const {
    auto better = [](const ScoredId& a, const ScoredId& b) {
        return a.score != b.score ? a.score > b.score : a.id < b.id;
    };
    // A bounded heap whose top is the worst of the best k so far.
    std::priority_queue<ScoredId, std::vector<ScoredId>, decltype(better)> best(better);
    auto consider = [&](std::uint64_t id, const float* vector) {
        ScoredId scored{id, similarity(query, vector)};
        if (best.size() < k) {
            best.push(scored);
        } else if (better(scored, best.top())) {
            best.pop();
            best.push(scored);
        }
    };
    const State& state = *state_;
    if (candidates != nullptr) {
        // Only the caller's candidates: removed ids are not live, so tombstones never score.
        // Two passes: the lookups first (independent of one another, so the core overlaps
        // their cache misses), then the scoring with the rows a few candidates ahead already
        // on their way from memory; a candidate's vector is a cold read either way.
        std::vector<std::pair<std::uint64_t, const float*>> rows;
        rows.reserve(candidates->size());
        for (std::uint64_t id : *candidates) {
            if (allow != nullptr && !(*allow)(id)) {
                continue;
            }
            auto found = live_.find(id);
            if (found != live_.end()) {
                rows.emplace_back(id, found->second.data());
            }
        }
        constexpr std::size_t kAhead = 4;
        constexpr std::size_t kLine = 64 / sizeof(float);
        for (std::size_t i = 0; i < rows.size(); ++i) {
            if (i + kAhead < rows.size()) {
                const float* next = rows[i + kAhead].second;
                for (std::size_t offset = 0; offset < options_.dimension; offset += kLine) {
                    __builtin_prefetch(next + offset);
                }
            }
            consider(rows[i].first, rows[i].second);
        }
    } else if (kind_ == Kind::kIvf) {
        for (const auto& [id, vector] : live_) {
            if (allow == nullptr || (*allow)(id)) {
                consider(id, vector.data());
            }
        }
    } else {
        // Positions in insertion order: the id table is read sequentially, and the predicate
        // (usually a lookup keyed by id) sees ids in the order they were added.
        for (std::size_t position = 0; position < state.ids.size(); ++position) {
            std::uint64_t id = state.ids[position];
            if (state.dead[position] != 0 || (allow != nullptr && !(*allow)(id))) {
                continue;
            }
            auto found = live_.find(id);
            if (found != live_.end()) {
                consider(id, found->second.data());
            }
        }
    }
    std::vector<ScoredId> out(best.size());
    for (std::size_t i = out.size(); i > 0; --i) {
        out[i - 1] = best.top();
        best.pop();
    }
    return out;
}

// Asks the predicate about indexed vectors at pseudo-random positions (a fixed seed, so a query
// plans the same way every time; not a stride, which aliases with filters on periodic ids) and
// stops once kEnoughHits pass: a filter that admits most vectors costs a few dozen calls, a tight
// one kMaxSamples. IVF keeps no positions; it samples the first live vectors in hash order.
double VectorIndex::estimate_selectivity(const std::function<bool(std::uint64_t)>& allow) const {
    constexpr std::size_t kMaxSamples = 1024;
    constexpr std::size_t kEnoughHits = 32;
    std::size_t seen = 0;
    std::size_t hits = 0;
    const State& state = *state_;
    if (kind_ == Kind::kIvf) {
        for (const auto& entry : live_) {
            if (seen == kMaxSamples || hits == kEnoughHits) {
                break;
            }
            ++seen;
            hits += allow(entry.first) ? 1 : 0;
        }
    } else {
        std::size_t held = state.ids.size();
        std::minstd_rand random(20261126);
        for (std::size_t draw = 0; draw < kMaxSamples && hits < kEnoughHits && held > 0;
             ++draw) {
            std::size_t position = random() % held;
            if (state.dead[position] != 0) {
                continue;
            }
            ++seen;
            hits += allow(state.ids[position]) ? 1 : 0;
        }
    }
    return seen == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(seen);
}

std::size_t VectorIndex::exact_scan_budget(std::size_t k) const {
    std::shared_lock lock(*mutex_);
    return exact_budget_locked(k);
}

// What a vector the HNSW walk visits costs against one candidate the exact scan scores.
// Measured by bench ann at 200,000 x 384 (docs/benchmarks.md, Retrieval): an unfiltered walk at
// efSearch 64 takes 0.68 ms for about 64 x 64 visits (0.17 us each: FAISS's storage is one array
// and neighbours share pages), the candidate scan 0.6 us per candidate (a hash lookup and a cold
// row each).
constexpr double kWalkVisitCost = 0.3;

// Below selectivity ef / max_ef the HNSW walk cannot widen enough to meet as many admitted
// vectors as an unfiltered one: its recall falls, so the exact scan is the plan there whatever
// it costs. Other kinds have no walk to protect: 0.
double VectorIndex::walk_recall_floor_locked(std::size_t k) const {
    if (kind_ != Kind::kHnsw) {
        return 0;
    }
    double ef = std::max<double>(ef_search_.load(), static_cast<double>(k));
    double max_ef = std::max<double>(options_.filter_max_ef, ef);
    return static_cast<double>(live_.size()) * ef / max_ef;
}

// The cost model behind the filtered plan (vector_index.h): vectors touched, a walk's visit
// weighted by kWalkVisitCost against a scanned candidate.
std::size_t VectorIndex::exact_budget_locked(std::size_t k) const {
    const auto n = static_cast<double>(live_.size());
    double budget = n;
    if (kind_ == Kind::kHnsw) {
        const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(state_->index.get());
        // Neighbours read per node the walk expands: those of level 0, where nearly all of it
        // runs (2M for HNSW<M>).
        double degree = hnsw != nullptr ? hnsw->hnsw.nb_neighbors(0) : 32;
        double ef = std::max<double>(ef_search_.load(), static_cast<double>(k));
        double recall_floor = walk_recall_floor_locked(k);
        // Above it, the walk expands about ef / s nodes of `degree` neighbours, s = c / n; the
        // scan touches c vectors: c < w (ef n / c) degree where c < sqrt(w ef n degree).
        double crossover = std::sqrt(kWalkVisitCost * ef * n * degree);
        budget = std::min(n, std::max(recall_floor, crossover));
    } else if (kind_ == Kind::kIvf && state_->index->is_trained) {
        // A probe reads nprobe of nlist lists: about n * nprobe / nlist vectors.
        const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(state_->index.get());
        if (ivf != nullptr && ivf->nlist > 0) {
            budget = std::min(n, n * static_cast<double>(options_.ivf_nprobe) /
                                     static_cast<double>(ivf->nlist));
        }
    }
    // Flat and untrained IVF indexes scan every vector anyway: any candidate list is cheaper.
    return std::min(options_.filter_exact_max, static_cast<std::size_t>(budget));
}

Result<std::vector<ScoredId>> VectorIndex::search(const Vector& query, std::size_t k,
                                                  const std::function<bool(std::uint64_t)>* allow,
                                                  SearchPlan* plan,
                                                  const CandidateSource* candidates) const {
    SearchPlan ignored;
    SearchPlan& how = plan != nullptr ? *plan : ignored;
    how = SearchPlan{};
    if (query.size() != options_.dimension) {
        return invalid_argument("query vector of " + std::to_string(query.size()) +
                                " floats, expected " + std::to_string(options_.dimension));
    }
    omp_set_num_threads(1);
    Vector q = query;
    if (options_.metric == Metric::kCosine) {
        l2_normalize(q);
    }
    std::shared_lock lock(*mutex_);
    if (k == 0 || live_.empty()) {
        return std::vector<ScoredId>();
    }
    const State& state = *state_;
    how.exact_budget = exact_budget_locked(k);
    const CandidateSource* source =
        allow != nullptr && candidates != nullptr && *candidates ? candidates : nullptr;
    if (source != nullptr) {
        // The lists stop building once they pass the budget, so a loose filter costs little here.
        if (auto planned = (*source)(how.exact_budget)) {
            return scan_candidates(q.data(), k, allow, *planned, how);
        }
    }
    // Small indexes and untrained IVF are scanned: exact, and cheaper than a graph walk.
    bool untrained = kind_ == Kind::kIvf && !state.index->is_trained;
    if (untrained || live_.size() <= std::max<std::size_t>(4 * k, 256)) {
        how.exact = true;
        return exact_scan(q.data(), k, allow);
    }
    int ef_search = std::max(ef_search_.load(), static_cast<int>(k));
    if (allow != nullptr) {
        double selectivity = estimate_selectivity(*allow);
        how.selectivity = selectivity;
        double admitted = selectivity * static_cast<double>(live_.size());
        // Lists that named more than the budget bound the admitted set from above and name it
        // exactly unless an `and` had a child too wide to narrow, so they outweigh a sample that
        // saw fewer: the sample's estimate of a 10% filter spreads by about a fifth, and it sent
        // one value in ten of `year = Y` at 200,000 vectors to a scan of 20,000 candidates where
        // the walk takes a fifth of the time (docs/benchmarks.md). Where the walk cannot keep
        // its recall the scan stays the plan; a walk that runs dry scans the lists after all.
        bool lists_over_budget = source != nullptr;
        if (admitted <= static_cast<double>(how.exact_budget) &&
            (!lists_over_budget || admitted <= walk_recall_floor_locked(k))) {
            return scan_listed_or_all(q.data(), k, allow, source, how);
        }
        double widened = std::ceil(static_cast<double>(ef_search) / selectivity);
        ef_search = std::max(ef_search,
                             static_cast<int>(std::min<double>(widened, options_.filter_max_ef)));
    }

    bool positional = kind_ != Kind::kIvf;
    Selector selector(positional ? &state.ids : nullptr, positional ? &state.dead : nullptr,
                      allow);
    bool need_selector = allow != nullptr || state.dead_count > 0;
    faiss::SearchParametersHNSW hnsw_params;
    faiss::SearchParametersIVF ivf_params;
    faiss::SearchParameters flat_params;
    faiss::SearchParameters* params = &flat_params;
    if (kind_ == Kind::kHnsw) {
        hnsw_params.efSearch = ef_search;
        params = &hnsw_params;
        how.ef_search = ef_search;
    } else if (kind_ == Kind::kIvf) {
        ivf_params.nprobe = options_.ivf_nprobe;
        params = &ivf_params;
    }
    params->sel = need_selector ? &selector : nullptr;

    std::vector<float> distances(k);
    std::vector<faiss::Index::idx_t> labels(k, -1);
    try {
        state.index->search(1, q.data(), static_cast<faiss::Index::idx_t>(k), distances.data(),
                            labels.data(), params);
    } catch (const std::exception& e) {
        return internal_error("faiss search in '" + options_.factory + "': " + e.what());
    }
    std::vector<ScoredId> out;
    for (std::size_t i = 0; i < k; ++i) {
        if (labels[i] < 0) {
            continue;
        }
        std::uint64_t id = positional ? state.ids[static_cast<std::size_t>(labels[i])]
                                      : static_cast<std::uint64_t>(labels[i]);
        double score = options_.metric == Metric::kL2 ? 1.0 / (1.0 + distances[i]) : distances[i];
        out.push_back(ScoredId{id, score});
    }
    if (out.size() < k) {
        // The graph walk or the probed lists ran dry under the filter (or fewer than k vectors
        // pass it): answer exactly.
        how.ran_dry = true;
        return scan_listed_or_all(q.data(), k, allow, source, how);
    }
    return out;
}

std::vector<ScoredId> VectorIndex::scan_candidates(const float* query, std::size_t k,
                                                   const std::function<bool(std::uint64_t)>* allow,
                                                   const CandidateList& list,
                                                   SearchPlan& plan) const {
    plan.exact = true;
    plan.candidates = list.ids.size();
    plan.selectivity =
        std::min(1.0, static_cast<double>(list.ids.size()) / static_cast<double>(live_.size()));
    return exact_scan(query, k, list.exact ? nullptr : allow, &list.ids);
}

std::vector<ScoredId> VectorIndex::scan_listed_or_all(
    const float* query, std::size_t k, const std::function<bool(std::uint64_t)>* allow,
    const CandidateSource* source, SearchPlan& plan) const {
    plan.exact = true;
    if (source != nullptr) {
        // The lists were over the exact-scan budget when the search planned, but scanning them
        // still beats asking the predicate about every vector: a candidate costs a lookup and a
        // score, a vector of the full scan the predicate (itself a chunk-table lookup and the
        // filter) and, when admitted, the same lookup and score. Past half the index, building
        // the list (copies, merges, intersections) costs about what the scan saves.
        if (auto list = (*source)(live_.size() / 2)) {
            return scan_candidates(query, k, allow, *list, plan);
        }
    }
    return exact_scan(query, k, allow);
}

void VectorIndex::restore_live(std::uint64_t id, Vector vector) {
    std::unique_lock lock(*mutex_);
    live_[id] = std::move(vector);
}

Status VectorIndex::replay(const std::vector<std::uint64_t>& added,
                           const std::vector<std::uint64_t>& removed) {
    omp_set_num_threads(1);
    std::unique_lock lock(*mutex_);
    State& state = *state_;
    std::vector<std::uint64_t> gone;
    for (std::uint64_t id : removed) {
        if (live_.count(id) == 0) {
            gone.push_back(id);
        }
    }
    SLUICE_RETURN_IF_ERROR(remove_from_faiss(state, gone));
    std::vector<std::uint64_t> missing;
    std::vector<float> data;
    std::unordered_set<std::uint64_t> seen;
    for (std::uint64_t id : added) {
        auto found = live_.find(id);
        if (found == live_.end() || !seen.insert(id).second) {
            continue;  // removed again later (its remove is in `removed`), or listed twice
        }
        bool present = kind_ == Kind::kIvf ? state.ivf_ids.count(id) != 0
                                           : state.position.count(id) != 0;
        if (!present) {
            missing.push_back(id);
            data.insert(data.end(), found->second.begin(), found->second.end());
        }
    }
    SLUICE_RETURN_IF_ERROR(add_to_faiss(state, missing, data.data(), options_.add_threads));
    return maybe_train(state);
}

Result<std::size_t> VectorIndex::finish_restore() {
    omp_set_num_threads(1);
    std::size_t fixed = 0;
    {
        std::unique_lock lock(*mutex_);
        State& state = *state_;
        std::vector<std::uint64_t> stale;
        if (kind_ == Kind::kIvf) {
            for (auto id : state.ivf_ids) {
                if (live_.count(id) == 0) {
                    stale.push_back(id);
                }
            }
        } else {
            for (const auto& [id, position] : state.position) {
                if (live_.count(id) == 0) {
                    stale.push_back(id);
                }
            }
        }
        SLUICE_RETURN_IF_ERROR(remove_from_faiss(state, stale));
        fixed += stale.size();
        bool trained = kind_ != Kind::kIvf || state.index->is_trained;
        if (trained) {
            std::vector<std::uint64_t> missing;
            std::vector<float> data;
            for (const auto& [id, vector] : live_) {
                bool present = kind_ == Kind::kIvf ? state.ivf_ids.count(id) != 0
                                                   : state.position.count(id) != 0;
                if (!present) {
                    missing.push_back(id);
                    data.insert(data.end(), vector.begin(), vector.end());
                }
            }
            SLUICE_RETURN_IF_ERROR(
                add_to_faiss(state, missing, data.data(), options_.add_threads));
            fixed += missing.size();
        }
        SLUICE_RETURN_IF_ERROR(maybe_train(state));
    }
    maybe_start_rebuild();
    return fixed;
}

void VectorIndex::maybe_start_rebuild() {
    std::unique_lock lock(*mutex_);
    if (kind_ != Kind::kHnsw || rebuilding_) {
        return;
    }
    std::size_t held = state_->ids.size();
    if (held < options_.rebuild_min_vectors ||
        static_cast<double>(state_->dead_count) <=
            options_.rebuild_tombstone_ratio * static_cast<double>(held)) {
        return;
    }
    if (rebuild_thread_.joinable()) {
        rebuild_thread_.join();  // the previous rebuild has finished (rebuilding_ is false)
    }
    rebuilding_ = true;
    changed_during_rebuild_.clear();
    rebuild_thread_ = std::jthread([this](std::stop_token stop) { rebuild(stop); });
}

void VectorIndex::rebuild(std::stop_token stop) {
    omp_set_num_threads(1);  // a background job leaves the cores to requests
    // 1. Copy the live vectors under a shared lock: queries go on, writers wait for the copy.
    std::vector<std::uint64_t> ids;
    std::vector<float> data;
    {
        std::shared_lock lock(*mutex_);
        ids.reserve(live_.size());
        data.reserve(live_.size() * options_.dimension);
        for (const auto& [id, vector] : live_) {
            ids.push_back(id);
            data.insert(data.end(), vector.begin(), vector.end());
        }
    }
    // 2. Build the new graph with no lock held.
    auto fresh = std::make_unique<State>();
    Status status = build_empty(*fresh);
    const std::size_t slice = 4096;
    for (std::size_t first = 0; status.ok() && first < ids.size(); first += slice) {
        if (stop.stop_requested()) {
            status = Status(StatusCode::kCancelled, "shutting down");
            break;
        }
        std::size_t n = std::min(slice, ids.size() - first);
        try {
            fresh->index->add(static_cast<faiss::Index::idx_t>(n),
                              data.data() + first * options_.dimension);
        } catch (const std::exception& e) {
            status = internal_error(std::string("faiss add during rebuild: ") + e.what());
        }
        for (std::size_t i = first; i < first + n; ++i) {
            fresh->position[ids[i]] = static_cast<std::int64_t>(fresh->ids.size());
            fresh->ids.push_back(ids[i]);
            fresh->dead.push_back(0);
        }
    }
    // 3. Under the exclusive lock, apply what changed meanwhile and swap.
    std::unique_lock lock(*mutex_);
    for (std::uint64_t id : changed_during_rebuild_) {
        if (!status.ok()) {
            break;
        }
        status = remove_from_faiss(*fresh, {id});
        auto found = live_.find(id);
        if (status.ok() && found != live_.end()) {
            status = add_to_faiss(*fresh, id, found->second);
        }
    }
    if (status.ok()) {
        log::info("retrieval", "hnsw rebuilt",
                  {{"vectors", live_.size()}, {"tombstones_dropped", state_->dead_count}});
        state_ = std::move(fresh);
        rebuilds_.fetch_add(1);
    } else if (status.code() != StatusCode::kCancelled) {
        log::error("retrieval", "hnsw rebuild failed; keeping the old graph",
                   {{"error", status.message()}});
    }
    changed_during_rebuild_.clear();
    rebuilding_ = false;
}

void VectorIndex::wait_for_rebuild() {
    if (rebuild_thread_.joinable()) {
        rebuild_thread_.join();
    }
}

}  // namespace sluice::retrieval
