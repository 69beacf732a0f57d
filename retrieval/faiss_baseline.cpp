#include "retrieval/faiss_baseline.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/IDSelector.h>

#include <string>

namespace sluice::retrieval {
namespace {

// Maps a FAISS label to our id and asks the predicate: what any FAISS caller with external ids
// and a filter writes. Unlike the wrapper's selector it knows nothing of tombstones; the bench
// deletes nothing.
class PredicateSelector final : public faiss::IDSelector {
public:
    PredicateSelector(const std::vector<std::uint64_t>* ids,
                      const std::function<bool(std::uint64_t)>* allow)
        : ids_(ids), allow_(allow) {}
    bool is_member(idx_t label) const override {
        return (*allow_)((*ids_)[static_cast<std::size_t>(label)]);
    }

private:
    const std::vector<std::uint64_t>* ids_;
    const std::function<bool(std::uint64_t)>* allow_;
};

Result<std::vector<ScoredId>> run(const faiss::Index& index, const std::vector<std::uint64_t>& ids,
                                  const float* query, std::size_t k,
                                  faiss::SearchParameters& params,
                                  const std::function<bool(std::uint64_t)>* allow) {
    PredicateSelector selector(&ids, allow);
    params.sel = allow != nullptr ? &selector : nullptr;
    std::vector<float> distances(k);
    std::vector<faiss::Index::idx_t> labels(k, -1);
    try {
        index.search(1, query, static_cast<faiss::Index::idx_t>(k), distances.data(),
                     labels.data(), &params);
    } catch (const std::exception& e) {
        return internal_error(std::string("faiss baseline search: ") + e.what());
    }
    std::vector<ScoredId> out;
    out.reserve(k);
    for (std::size_t i = 0; i < k; ++i) {
        if (labels[i] >= 0) {
            out.push_back(ScoredId{ids[static_cast<std::size_t>(labels[i])], distances[i]});
        }
    }
    return out;
}

}  // namespace

FaissBaseline::FaissBaseline(Tag, VectorIndex::FaissView view, const faiss::Index* storage)
    : view_(view), storage_(storage) {}

Result<std::unique_ptr<FaissBaseline>> FaissBaseline::attach(const VectorIndex& index) {
    VectorIndex::FaissView view = index.borrow_faiss();
    const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(view.index);
    if (hnsw == nullptr || dynamic_cast<const faiss::IndexFlat*>(hnsw->storage) == nullptr) {
        return failed_precondition("the faiss baseline needs an HNSW index over flat storage, "
                                   "found index factory '" + index.options().factory + "'");
    }
    return std::make_unique<FaissBaseline>(Tag{}, view, hnsw->storage);
}

Result<std::vector<ScoredId>> FaissBaseline::search(
    const float* query, std::size_t k, int ef_search,
    const std::function<bool(std::uint64_t)>* allow) const {
    faiss::SearchParametersHNSW params;
    params.efSearch = ef_search;
    return run(*view_.index, *view_.ids, query, k, params, allow);
}

Result<std::vector<ScoredId>> FaissBaseline::exact(
    const float* query, std::size_t k, const std::function<bool(std::uint64_t)>* allow) const {
    faiss::SearchParameters params;
    return run(*storage_, *view_.ids, query, k, params, allow);
}

}  // namespace sluice::retrieval
