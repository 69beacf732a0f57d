// Tokenizer behaviour beyond reference parity: special tokens, decoding rules, bad input,
// batches, megabyte inputs, and the BPE merge strategies against each other.
#include <random>
#include <set>

#include "inference/detail/bpe.h"
#include "inference/detail/pretokenizer.h"
#include "tokenizer_fixture.h"

namespace sluice::inference {
namespace {

using testing::dbrx_tokenizer;

TEST_CASE("known encodings of cl100k_base") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    CHECK(*tokenizer.encode("hello world") == std::vector<TokenId>{15339, 1917});
    CHECK(tokenizer.encode("")->empty());
    CHECK(tokenizer.vocab_size() == dbrx::kVocabSize);
    CHECK(tokenizer.n_bpe_ids() == dbrx::kBpeTokens);
    CHECK(*tokenizer.count("hello world") == 2);
}

TEST_CASE("special tokens are text in ordinary mode and tokens in allowed mode") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    for (const SpecialToken& special : dbrx_special_tokens()) {
        auto allowed = tokenizer.encode(special.text, SpecialTokenMode::kAllowed);
        CHECK(*allowed == std::vector<TokenId>{special.id});
        auto ordinary = tokenizer.encode(special.text);
        REQUIRE(ordinary.ok());
        CHECK(ordinary->size() > 1);
        for (TokenId id : *ordinary) {
            CHECK(!tokenizer.is_special(id));
        }
        CHECK(*tokenizer.decode(*ordinary) == special.text);
        CHECK(*tokenizer.decode(*allowed) == special.text);
    }
    auto mixed = tokenizer.encode("a<|im_start|>user\nhi<|im_end|><|im_end|>b",
                                  SpecialTokenMode::kAllowed);
    REQUIRE(mixed.ok());
    std::vector<TokenId> expected{*tokenizer.encode("a")};
    expected.push_back(dbrx::kImStart);
    auto middle = *tokenizer.encode("user\nhi");
    expected.insert(expected.end(), middle.begin(), middle.end());
    expected.push_back(dbrx::kImEnd);
    expected.push_back(dbrx::kImEnd);
    expected.push_back(tokenizer.encode("b")->front());
    CHECK(*mixed == expected);
    CHECK(tokenizer.special_token_id("<|pad|>") == dbrx::kPad);
    CHECK(!tokenizer.special_token_id("<|nothing|>").has_value());
}

TEST_CASE("decode rejects ids that no token holds") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    for (TokenId id : {100256, 100261, 100275, 100280, 100351}) {
        std::vector<TokenId> ids{15339, id};
        auto decoded = tokenizer.decode(ids);
        REQUIRE(!decoded.ok());
        CHECK(decoded.status().code() == StatusCode::kInvalidArgument);
        CHECK(decoded.status().message() ==
              "token id " + std::to_string(id) +
                  " at position 1 is not assigned to any token (vocabulary padding or a gap)");
    }
    for (TokenId id : {-1, 100352, 1 << 30}) {
        std::vector<TokenId> ids{id};
        auto decoded = tokenizer.decode(ids);
        REQUIRE(!decoded.ok());
        CHECK(decoded.status().message().find("is out of range: the vocabulary has ids 0..100351") !=
              std::string::npos);
    }
    std::vector<TokenId> fine{dbrx::kEndOfText, dbrx::kFimSuffix, dbrx::kEndOfPrompt, dbrx::kImEnd};
    CHECK(tokenizer.check_ids(fine).ok());
}

TEST_CASE("decode_text repairs tokens that split a character") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    // Rare characters are spelled in byte tokens, so the first token is part of a character.
    auto ids = *tokenizer.encode("\xF0\x93\x80\x80 hieroglyph");
    REQUIRE(ids.size() >= 2);
    std::vector<TokenId> first_only{ids.front()};
    auto raw = *tokenizer.decode(first_only);
    auto text = *tokenizer.decode_text(first_only);
    CHECK(raw.size() < 4);
    CHECK(text == "\xEF\xBF\xBD");
    CHECK(*tokenizer.decode_text(ids) == "\xF0\x93\x80\x80 hieroglyph");
}

TEST_CASE("invalid utf-8 is an error that gives the byte offset") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    for (auto mode : {SpecialTokenMode::kOrdinary, SpecialTokenMode::kAllowed}) {
        auto ids = tokenizer.encode(std::string("hello <|im_end|> \xC3\x28 world"), mode);
        REQUIRE(!ids.ok());
        CHECK(ids.status().code() == StatusCode::kInvalidArgument);
        CHECK(ids.status().message() == "invalid utf-8 at byte 17");
    }
    std::vector<TokenId> out{1, 2, 3};
    CHECK(!tokenizer.encode_into("ok \xFF", SpecialTokenMode::kOrdinary, out).ok());
    CHECK(out == std::vector<TokenId>{1, 2, 3});
}

TEST_CASE("batch encoding equals encoding one by one, in order") {
    const Tokenizer& tokenizer = dbrx_tokenizer();
    std::vector<std::string> texts;
    for (int i = 0; i < 300; ++i) {
        texts.push_back("document " + std::to_string(i) + ": " + std::string(i % 50, 'x') +
                        " 中文 <|im_end|> 'll");
    }
    std::vector<std::string_view> views(texts.begin(), texts.end());
    for (int threads : {1, 4}) {
        auto batch = tokenizer.encode_batch(views, SpecialTokenMode::kOrdinary, threads);
        REQUIRE(batch.ok());
        for (std::size_t i = 0; i < texts.size(); ++i) {
            CHECK((*batch)[i] == *tokenizer.encode(texts[i]));
        }
    }
    texts[7] = "bad \xFF";
    texts[200] = "bad \xFE";
    views.assign(texts.begin(), texts.end());
    auto failed = tokenizer.encode_batch(views, SpecialTokenMode::kOrdinary, 4);
    REQUIRE(!failed.ok());
    CHECK(failed.status().message() == "text 7: invalid utf-8 at byte 4");
}

TEST_CASE("megabyte inputs of one character encode and round-trip") {
    // Linear time is measured by `sluice bench tokenizer`; here: they finish and are exact.
    const Tokenizer& tokenizer = dbrx_tokenizer();
    const std::size_t kMegabyte = 1 << 20;
    for (std::string unit : {"a", " ", "1", "\n", "中"}) {
        std::string text;
        while (text.size() + unit.size() <= kMegabyte) {
            text += unit;
        }
        auto ids = tokenizer.encode(text);
        REQUIRE(ids.ok());
        CHECK(ids->size() < text.size());
        CHECK(*tokenizer.decode(*ids) == text);
        // One long piece merges pairwise: the ids repeat a short period of at most a few tokens
        // apart from the end, which would not hold if merges went astray.
        std::set<TokenId> distinct(ids->begin(), ids->end());
        CHECK_MESSAGE(distinct.size() <= 8, "unit " << unit << ": " << distinct.size());
    }
}

TEST_CASE("flat and heap merges agree on every piece") {
    auto spec_tokens = read_tiktoken_ranks(testing::shipped_ranks_path(), kCl100kSha256);
    REQUIRE(spec_tokens.ok());
    auto model = detail::BpeModel::build(std::move(*spec_tokens), std::nullopt, true);
    REQUIRE(model.ok());
    std::mt19937 rng(42);
    const std::vector<std::string> units = {"a", "b", "e", "th", "in", " ", "中", "😀", "1", "é",
                                            "ing", "the", "\n", "!", "'"};
    for (int trial = 0; trial < 3000; ++trial) {
        std::string piece;
        std::size_t target = 1 + rng() % detail::BpeModel::kSmallPiece;
        while (true) {
            const std::string& unit = units[rng() % units.size()];
            if (piece.size() + unit.size() > target) {
                break;
            }
            piece += unit;
        }
        if (piece.empty()) {
            continue;
        }
        std::vector<detail::BpeId> flat;
        std::vector<detail::BpeId> heap;
        model->merge_flat(piece, flat);
        model->merge_heap(piece, heap);
        REQUIRE_MESSAGE(flat == heap, testing::shown(piece));
    }
}

TEST_CASE("the pattern rewrite spells out white space, letters and numbers") {
    std::string rewritten = detail::reference_unicode_pattern(R"(\s+(?!\S)|[^\s\p{L}\p{N}]+|\pL)");
    CHECK(rewritten.find("\\s") == std::string::npos);
    CHECK(rewritten.find("\\S") == std::string::npos);
    CHECK(rewritten.find("\\x{85}") != std::string::npos);
    CHECK(rewritten.find("[^\\x{9}") != std::string::npos);
    CHECK(rewritten.find("\\x{1D2C0}") != std::string::npos);  // Kaktovik numerals, Unicode 15
    CHECK(detail::reference_unicode_pattern(R"([]\s])") .find("[]\\x{9}") == 0);
    auto bad = detail::Pretokenizer::compile("(unclosed");
    REQUIRE(!bad.ok());
    CHECK(bad.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("tokenizer specs are checked") {
    auto base = [] {
        TokenizerSpec spec;
        spec.name = "test";
        for (int byte = 0; byte < 256; ++byte) {
            spec.bpe_tokens.emplace_back(std::string(1, static_cast<char>(byte)));
        }
        spec.bpe_tokens.emplace_back("ab");
        return spec;
    };
    auto ok = Tokenizer::create(base());
    REQUIRE(ok.ok());
    CHECK(*(*ok)->encode("xab") == std::vector<TokenId>{'x', 256});

    auto clash = base();
    clash.special_tokens = {{"<|x|>", 256}};
    CHECK(!Tokenizer::create(std::move(clash)).ok());
    auto twice = base();
    twice.special_tokens = {{"<|x|>", 300}, {"<|x|>", 301}};
    CHECK(!Tokenizer::create(std::move(twice)).ok());
    auto missing_byte = base();
    missing_byte.bpe_tokens[7].reset();
    auto status = Tokenizer::create(std::move(missing_byte)).status();
    CHECK(status.message().find("byte 0x\\x07 has no token") != std::string::npos);
    auto duplicate = base();
    duplicate.bpe_tokens.emplace_back("ab");
    CHECK(!Tokenizer::create(std::move(duplicate)).ok());
    auto small = base();
    small.special_tokens = {{"<|x|>", 400}};
    small.vocab_size = 300;
    CHECK(!Tokenizer::create(std::move(small)).ok());
}

TEST_CASE("rank files with errors are rejected with the line") {
    CHECK(parse_tiktoken_ranks("IQ== 0\nIg== 1\n").ok());
    CHECK(parse_tiktoken_ranks("IQ== 0\nIg==\n").status().message() ==
          "rank file line 2: expected '<base64> <rank>', found no space");
    CHECK(parse_tiktoken_ranks("IQ== 0\n\nIg== x\n").status().message() ==
          "rank file line 3: rank 'x' is not a number in 0..2^30");
    CHECK(parse_tiktoken_ranks("I!== 0\n").status().message() ==
          "rank file line 1: token 'I!==' is not non-empty base64");
    CHECK(parse_tiktoken_ranks("IQ== 0\nIg== 0\n").status().message() ==
          "rank file line 2: rank 0 appears twice");
    CHECK(!parse_tiktoken_ranks("").ok());
    auto missing = open_tokenizer("/nonexistent/cl100k_base.tiktoken");
    CHECK(missing.status().code() == StatusCode::kNotFound);
}

TEST_CASE("a rank file that is not cl100k_base is refused as the dbrx tokenizer") {
    auto dir = std::filesystem::path(SLUICE_BINARY_DIR) / "tokenizer_test_tmp";
    std::filesystem::create_directories(dir);
    auto path = dir / "other.tiktoken";
    {
        std::ofstream out(path);
        out << "IQ== 0\n";
    }
    auto opened = open_dbrx_tiktoken(path);
    REQUIRE(!opened.ok());
    CHECK(opened.status().code() == StatusCode::kDataLoss);
    CHECK(opened.status().message().find("expected " + std::string(kCl100kSha256)) !=
          std::string::npos);
}

}  // namespace
}  // namespace sluice::inference
