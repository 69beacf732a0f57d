#pragma once
// Constrained decoding: a grammar compiled against the vocabulary, and a matcher per sequence
// that says which tokens may come next and follows the ones chosen.
//
// How masks are made. The grammar runs as a pushdown automaton over bytes
// (detail/grammar_automaton.h). At compile time, for every position of the grammar that can be a
// stack top, the whole vocabulary is walked through the token trie from that position alone: a
// token that stays inside the rule (or ends exactly where the rule returns) is accepted or
// rejected whatever the stack beneath holds, and goes into a cached set; a token that would run
// past the rule's end is "context-dependent" and is kept in a short list. At run time a mask is
// the union of the cached sets of the current tops plus a walk of their context-dependent lists
// against the real stacks (sharing prefixes between neighbouring tokens).
//
// End of turn: <|im_end|> and <|endoftext|> are allowed exactly where the grammar is complete;
// no other special token is ever allowed.
//
// Thread safety: CompiledGrammar and GrammarCompiler are immutable and may be shared by any number
// of threads. A GrammarMatcher is owned by one sequence (copy it for n > 1 or beam branches).

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "inference/grammar.h"
#include "inference/sampling.h"
#include "inference/token_trie.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

namespace detail {
struct FlatGrammar;
struct MaskCache;
class TopSetTable;
}  // namespace detail

struct GrammarStats {
    int32_t n_rules = 0;
    int32_t n_positions = 0;          // byte-set elements (possible stack tops)
    int32_t n_masks_computed = 0;     // positions walked over the vocabulary (twins share)
    int64_t n_context_dependent = 0;  // sum over positions of their context-dependent tokens
    int64_t mask_bytes = 0;           // memory of the cached masks
    double compile_seconds = 0;
};

class CompiledGrammar {
public:
    // Precondition-free: validates the grammar (kInvalidArgument as Grammar::validate()).
    static Result<std::shared_ptr<const CompiledGrammar>> compile(
        Grammar grammar, std::shared_ptr<const TokenTrie> trie);
    ~CompiledGrammar();
    CompiledGrammar(const CompiledGrammar&) = delete;
    CompiledGrammar& operator=(const CompiledGrammar&) = delete;

    const Grammar& grammar() const { return grammar_; }
    const TokenTrie& trie() const { return *trie_; }
    int vocab_size() const { return trie_->vocab_size(); }
    // uint64 words in a token bitset: ceil(vocab_size / 64).
    size_t mask_words() const { return (static_cast<size_t>(vocab_size()) + 63) / 64; }
    const GrammarStats& stats() const { return stats_; }

private:
    friend class GrammarMatcher;
    CompiledGrammar() = default;

    Grammar grammar_;
    std::shared_ptr<const TokenTrie> trie_;
    std::unique_ptr<detail::FlatGrammar> flat_;
    std::unique_ptr<detail::MaskCache> masks_;
    GrammarStats stats_;
};

class GrammarMatcher : public TokenConstraint {
public:
    explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar);
    ~GrammarMatcher() override;
    GrammarMatcher(const GrammarMatcher& other);
    GrammarMatcher& operator=(const GrammarMatcher& other);
    GrammarMatcher(GrammarMatcher&&) noexcept;
    GrammarMatcher& operator=(GrammarMatcher&&) noexcept;

    // Writes the allowed next tokens into `bitset` (bit i of word i / 64 set: token i allowed);
    // every other bit is cleared. Precondition: bitset.size() >= grammar mask_words(). After
    // termination only nothing is allowed.
    void fill_next_token_mask(std::span<uint64_t> bitset) override;

    // Follows a token. kInvalidArgument (state unchanged) when the grammar does not allow it;
    // kFailedPrecondition after termination. An end-of-turn token where the grammar is complete
    // terminates the matcher.
    Status accept_token(int32_t id) override;
    // Follows raw bytes (a forced prefix, tests). kInvalidArgument (state unchanged) naming the
    // offset of the first byte the grammar rejects. Counts as one step for rollback().
    Status accept_bytes(std::string_view bytes);

    // True where the output so far is a complete sentence of the grammar (end of turn allowed).
    bool is_accepting() const;
    // True after an end-of-turn token was accepted, or when nothing but the end can follow.
    bool is_terminated() const;
    // Undoes the last `n` accepted steps (tokens or accept_bytes calls). kInvalidArgument when
    // fewer were taken.
    Status rollback(int32_t n);
    // Back to the start, as freshly made.
    void reset();
    int32_t n_steps() const { return static_cast<int32_t>(history_.size()); }

    const CompiledGrammar& grammar() const { return *grammar_; }

private:
    // The set after `bytes`, or TopSetTable::kDead with the offset of the byte no stack takes.
    int32_t advance_bytes(std::string_view bytes, size_t* rejected_at);
    // Records the current state for rollback() and moves to `set`.
    void move_to(int32_t set);
    // The set id of tops_, interning it (and bounding the table) as needed.
    int32_t current_set();
    void walk_context_dependent(int32_t top, std::span<const int32_t> tokens,
                                std::span<uint64_t> bitset, std::vector<int32_t>& allowed);

    std::shared_ptr<const CompiledGrammar> grammar_;
    std::unique_ptr<detail::TopSetTable> sets_;
    std::vector<int32_t> tops_;
    int32_t tops_set_ = -1;  // set id of tops_ in sets_, -1 when not interned
    bool terminated_ = false;
    struct Step {
        std::vector<int32_t> tops;
        bool terminated;
    };
    std::vector<Step> history_;
    // Per set id: the context-dependent tokens its walk allowed (the cached sets are cheap to
    // OR again; the walk is what a repeated state should not pay twice).
    std::vector<std::vector<int32_t>> walked_;
    std::vector<char> walked_known_;
    // Scratch for the context-dependent walk: the set after each byte of the current token.
    std::vector<int32_t> walk_;
};

// Compiles grammars against one tokenizer's vocabulary; holds its token trie (built once, about
// 100k tokens) so that each grammar compiles without rebuilding it.
class GrammarCompiler {
public:
    explicit GrammarCompiler(const Tokenizer& tokenizer);

    const std::shared_ptr<const TokenTrie>& trie() const { return trie_; }

    Result<std::shared_ptr<const CompiledGrammar>> compile(Grammar grammar) const;
    // A grammar in the text syntax of docs/grammar.md.
    Result<std::shared_ptr<const CompiledGrammar>> compile_grammar_text(std::string_view text) const;
    // A JSON schema (json_schema_grammar.h for the subset and the whitespace policy).
    Result<std::shared_ptr<const CompiledGrammar>> compile_json_schema(
        const nlohmann::json& schema) const;
    // Any JSON object (response_format {"type": "json_object"}).
    Result<std::shared_ptr<const CompiledGrammar>> compile_json_object() const;

private:
    std::shared_ptr<const TokenTrie> trie_;
};

// One-shot form of GrammarCompiler(tokenizer).compile_json_schema(schema); builds the trie each
// call, so servers keep a GrammarCompiler instead.
Result<std::shared_ptr<const CompiledGrammar>> compile_json_schema(const nlohmann::json& schema,
                                                                   const Tokenizer& tokenizer);

}  // namespace sluice::inference
