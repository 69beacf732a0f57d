#pragma once
// `sluice tokenize` and `sluice detokenize`: JSON lines in, JSON lines out, with the tokenizer the
// server uses (the shipped cl100k_base ranks, or --tokenizer PATH: a .tiktoken file or a
// checkpoint folder with tokenizer.json).
//
//   echo '{"text": "hello world"}' | sluice tokenize            -> {"ids":[15339,1917]}
//   echo '{"text": "hello world"}' | sluice tokenize --count    -> {"count":2}
//   echo '{"ids": [15339,1917]}'   | sluice detokenize          -> {"text":"hello world"}
//
// Blank lines are skipped. The first bad line stops the command with "line N: ..." on stderr
// and exit code 1.

#include <filesystem>
#include <istream>
#include <ostream>

#include "app/cli.h"
#include "common/result.h"
#include "inference/tokenizer.h"

namespace sluice::app {

void add_tokenize_commands(Cli& cli);

// Where the tokenizer comes from when --tokenizer is not given: $SLUICE_TOKENIZER, else the
// shipped ranks beside the executable (<exe>/../../inference/assets/ in the build tree,
// <exe>/../share/sluice/ when installed). kNotFound naming the places looked at.
Result<std::filesystem::path> default_tokenizer_path();

// Opens `path`, or the default when it is empty.
Result<std::unique_ptr<inference::Tokenizer>> open_cli_tokenizer(const std::filesystem::path& path);

struct TokenizeOptions {
    bool count = false;
    inference::SpecialTokenMode mode = inference::SpecialTokenMode::kOrdinary;
};

// The command bodies over streams, for tests. Return the exit code.
int run_tokenize(const inference::Tokenizer& tokenizer, const TokenizeOptions& options,
                 std::istream& in, std::ostream& out, std::ostream& err);
int run_detokenize(const inference::Tokenizer& tokenizer, std::istream& in, std::ostream& out,
                   std::ostream& err);

}  // namespace sluice::app
