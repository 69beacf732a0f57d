// Tokenizer::encode_batch: many texts over a pool of std::jthread workers.
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "inference/tokenizer.h"

namespace sluice::inference {

Result<std::vector<std::vector<TokenId>>> Tokenizer::encode_batch(
    std::span<const std::string_view> texts, SpecialTokenMode mode, int n_threads) const {
    std::vector<std::vector<TokenId>> results(texts.size());
    // Workers claim small runs of texts from a shared counter: texts differ wildly in length, so
    // a static split would leave threads idle behind the one holding the longest documents.
    constexpr std::size_t kRun = 8;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::size_t error_index = texts.size();
    Status error;

    auto work = [&] {
        while (!failed.load(std::memory_order_relaxed)) {
            std::size_t begin = next.fetch_add(kRun, std::memory_order_relaxed);
            if (begin >= texts.size()) {
                return;
            }
            std::size_t end = std::min(texts.size(), begin + kRun);
            for (std::size_t i = begin; i < end; ++i) {
                Status status = encode_into(texts[i], mode, results[i]);
                if (!status.ok()) {
                    std::lock_guard lock(error_mutex);
                    if (i < error_index) {
                        error_index = i;
                        error = std::move(status);
                    }
                    failed.store(true, std::memory_order_relaxed);
                    return;
                }
            }
        }
    };

    int workers = std::max(1, std::min<int>(n_threads, static_cast<int>(texts.size())));
    if (workers == 1) {
        work();
    } else {
        std::vector<std::jthread> pool;
        pool.reserve(static_cast<std::size_t>(workers));
        for (int t = 0; t < workers; ++t) {
            pool.emplace_back(work);
        }
    }
    if (failed.load()) {
        return error.with_context("text " + std::to_string(error_index));
    }
    return results;
}

}  // namespace sluice::inference
