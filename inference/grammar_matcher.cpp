#include "inference/grammar_matcher.h"

#include <algorithm>
#include <chrono>

#include "inference/detail/grammar_automaton.h"
#include "inference/detail/mask_cache.h"
#include "inference/detail/top_set_table.h"
#include "inference/json_schema_grammar.h"

namespace sluice::inference {

Result<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::compile(
    Grammar grammar, std::shared_ptr<const TokenTrie> trie) {
    const auto start = std::chrono::steady_clock::now();
    SLUICE_RETURN_IF_ERROR(grammar.validate());
    std::shared_ptr<CompiledGrammar> compiled(new CompiledGrammar());
    compiled->flat_ = std::make_unique<detail::FlatGrammar>(detail::flatten_grammar(grammar));
    compiled->stats_.n_rules = static_cast<int32_t>(grammar.rules().size());
    compiled->masks_ = std::make_unique<detail::MaskCache>(
        detail::build_mask_cache(*compiled->flat_, *trie, compiled->stats_));
    compiled->grammar_ = std::move(grammar);
    compiled->trie_ = std::move(trie);
    compiled->stats_.compile_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::shared_ptr<const CompiledGrammar>(std::move(compiled));
}

CompiledGrammar::~CompiledGrammar() = default;

namespace {

// Past this many distinct sets a matcher's table starts over: about 1 KiB of transitions each,
// so a long or adversarial output keeps its memory bounded.
constexpr int32_t kMaxCachedSets = 4096;

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar)
    : grammar_(std::move(grammar)),
      sets_(std::make_unique<detail::TopSetTable>(grammar_->flat_.get())) {
    sets_->arena().initial(tops_);
}

GrammarMatcher::~GrammarMatcher() = default;

GrammarMatcher::GrammarMatcher(const GrammarMatcher& other)
    : grammar_(other.grammar_),
      sets_(std::make_unique<detail::TopSetTable>(*other.sets_)),
      tops_(other.tops_),
      tops_set_(other.tops_set_),
      terminated_(other.terminated_),
      history_(other.history_),
      walked_(other.walked_),
      walked_known_(other.walked_known_) {}

GrammarMatcher& GrammarMatcher::operator=(const GrammarMatcher& other) {
    if (this != &other) {
        GrammarMatcher copy(other);
        *this = std::move(copy);
    }
    return *this;
}

GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

int32_t GrammarMatcher::current_set() {
    if (tops_set_ < 0) {
        if (sets_->size() >= kMaxCachedSets) {
            sets_->clear_sets();
            walked_.clear();
            walked_known_.clear();
        }
        tops_set_ = sets_->intern(tops_);
    }
    return tops_set_;
}

void GrammarMatcher::fill_next_token_mask(std::span<uint64_t> bitset) {
    const size_t words = grammar_->mask_words();
    SLUICE_CHECK(bitset.size() >= words, "token bitset smaller than the vocabulary");
    std::fill(bitset.begin(), bitset.end(), 0);
    if (terminated_) {
        return;
    }
    auto allow = [&](int32_t id) { bitset[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63); };
    const auto& by_position = grammar_->masks_->by_position;
    const detail::StackArena& arena = sets_->arena();
    for (int32_t top : tops_) {
        if (top == detail::kAccept) {
            for (int32_t id : grammar_->trie().end_of_turn_ids()) {
                allow(id);
            }
            continue;
        }
        const detail::PositionMask& mask =
            *by_position[static_cast<size_t>(arena.node(top).position)];
        if (!mask.bits.empty()) {
            for (size_t w = 0; w < words; ++w) {
                bitset[w] |= mask.bits[w];
            }
        } else {
            for (int32_t id : mask.ids) {
                allow(id);
            }
        }
    }
    // Context-dependent tokens after the cached sets, so those already allowed are skipped; a
    // set of tops met before replays what its walk allowed.
    const auto set = static_cast<size_t>(current_set());
    if (walked_known_.size() <= set) {
        walked_known_.resize(set + 1, 0);
        walked_.resize(set + 1);
    }
    if (!walked_known_[set]) {
        std::vector<int32_t> allowed;
        for (int32_t top : tops_) {
            if (top != detail::kAccept) {
                walk_context_dependent(
                    top,
                    by_position[static_cast<size_t>(arena.node(top).position)]->context_dependent,
                    bitset, allowed);
            }
        }
        walked_[set] = std::move(allowed);
        walked_known_[set] = 1;
        return;
    }
    for (int32_t id : walked_[set]) {
        allow(id);
    }
}

void GrammarMatcher::walk_context_dependent(int32_t top, std::span<const int32_t> tokens,
                                            std::span<uint64_t> bitset,
                                            std::vector<int32_t>& allowed) {
    if (tokens.empty()) {
        return;
    }
    const TokenTrie& trie = grammar_->trie();
    walk_.resize(static_cast<size_t>(trie.max_token_bytes()) + 1);
    walk_[0] = sets_->intern({top});
    // walk_[0..valid] hold the sets along `previous`.
    std::string_view previous;
    size_t valid = 0;
    for (int32_t id : tokens) {
        if ((bitset[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1u) {
            continue;
        }
        const std::string_view bytes = trie.token_bytes(id);
        size_t d = 0;
        const size_t limit = std::min({previous.size(), bytes.size(), valid});
        while (d < limit && previous[d] == bytes[d]) {
            ++d;
        }
        bool alive = true;
        for (; d < bytes.size(); ++d) {
            if (walk_[d] == detail::TopSetTable::kDead) {
                alive = false;
                break;
            }
            walk_[d + 1] = sets_->step(walk_[d], static_cast<uint8_t>(bytes[d]));
        }
        valid = d;
        previous = bytes;
        if (alive && walk_[bytes.size()] != detail::TopSetTable::kDead) {
            bitset[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
            allowed.push_back(id);
        }
    }
}

int32_t GrammarMatcher::advance_bytes(std::string_view bytes, size_t* rejected_at) {
    int32_t set = current_set();
    for (size_t i = 0; i < bytes.size(); ++i) {
        set = sets_->step(set, static_cast<uint8_t>(bytes[i]));
        if (set == detail::TopSetTable::kDead) {
            if (rejected_at != nullptr) {
                *rejected_at = i;
            }
            return set;
        }
    }
    return set;
}

void GrammarMatcher::move_to(int32_t set) {
    history_.push_back({std::move(tops_), terminated_});
    tops_ = sets_->tops(set);
    tops_set_ = set;
}

Status GrammarMatcher::accept_token(int32_t id) {
    if (terminated_) {
        return failed_precondition("grammar matcher: token " + std::to_string(id) +
                                   " after the end of the output");
    }
    const auto& eot = grammar_->trie().end_of_turn_ids();
    if (std::find(eot.begin(), eot.end(), id) != eot.end()) {
        if (!is_accepting()) {
            return invalid_argument("grammar matcher: end-of-turn token " + std::to_string(id) +
                                    " before the output is complete");
        }
        history_.push_back({tops_, terminated_});
        terminated_ = true;
        return Status::ok_status();
    }
    const std::string_view bytes = grammar_->trie().token_bytes(id);
    if (bytes.empty()) {
        return invalid_argument("grammar matcher: token " + std::to_string(id) +
                                " is special or outside the vocabulary");
    }
    const int32_t set = advance_bytes(bytes, nullptr);
    if (set == detail::TopSetTable::kDead) {
        return invalid_argument("grammar matcher: token " + std::to_string(id) +
                                " is not allowed here");
    }
    move_to(set);
    return Status::ok_status();
}

Status GrammarMatcher::accept_bytes(std::string_view bytes) {
    if (terminated_) {
        return failed_precondition("grammar matcher: bytes after the end of the output");
    }
    size_t rejected_at = 0;
    const int32_t set = advance_bytes(bytes, &rejected_at);
    if (set == detail::TopSetTable::kDead) {
        return invalid_argument("grammar matcher: byte " + std::to_string(rejected_at) +
                                " of the input is not allowed here");
    }
    move_to(set);
    return Status::ok_status();
}

bool GrammarMatcher::is_accepting() const {
    return !terminated_ && std::binary_search(tops_.begin(), tops_.end(), detail::kAccept);
}

bool GrammarMatcher::is_terminated() const {
    return terminated_ || (tops_.size() == 1 && tops_[0] == detail::kAccept);
}

Status GrammarMatcher::rollback(int32_t n) {
    if (n < 0 || n > n_steps()) {
        return invalid_argument("grammar matcher: cannot roll back " + std::to_string(n) +
                                " steps, " + std::to_string(n_steps()) + " taken");
    }
    for (int32_t i = 0; i < n; ++i) {
        tops_set_ = -1;
        tops_ = std::move(history_.back().tops);
        terminated_ = history_.back().terminated;
        history_.pop_back();
    }
    return Status::ok_status();
}

void GrammarMatcher::reset() {
    history_.clear();
    terminated_ = false;
    tops_set_ = -1;
    sets_->arena().initial(tops_);
}

GrammarCompiler::GrammarCompiler(const Tokenizer& tokenizer) : trie_(TokenTrie::build(tokenizer)) {}

Result<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::compile(Grammar grammar) const {
    return CompiledGrammar::compile(std::move(grammar), trie_);
}

Result<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::compile_grammar_text(
    std::string_view text) const {
    SLUICE_ASSIGN_OR_RETURN(Grammar grammar, parse_grammar(text));
    return compile(std::move(grammar));
}

Result<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::compile_json_schema(
    const nlohmann::json& schema) const {
    SLUICE_ASSIGN_OR_RETURN(Grammar grammar,
                            json_schema_to_grammar(schema, {.twin_depth = trie_->max_token_bytes() + 1}));
    return compile(std::move(grammar));
}

Result<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::compile_json_object() const {
    return compile(json_object_grammar());
}

Result<std::shared_ptr<const CompiledGrammar>> compile_json_schema(const nlohmann::json& schema,
                                                                   const Tokenizer& tokenizer) {
    return GrammarCompiler(tokenizer).compile_json_schema(schema);
}

}  // namespace sluice::inference
