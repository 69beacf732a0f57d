#pragma once
// Hugging Face tokenizer files: a DBRX checkpoint folder brings its own tokenizer as
// `tokenizer.json` (+ `tokenizer_config.json`), and the small-checkpoint generator writes them.
//
// Supported `tokenizer.json`: model type "BPE" over GPT-2 byte-level vocabulary strings, merges as
// "a b" strings or ["a", "b"] pairs, optional `ignore_merges`; no normalizer; pre-tokenizer a
// Split on a regex (behaviour "Isolated") followed by ByteLevel without its own regex, or a
// ByteLevel with GPT-2's regex. Everything in `added_tokens` and in tokenizer_config.json's
// `added_tokens_decoder` becomes a special token: recognised only in kAllowed mode, never in user
// content. `config.json` beside them, when present, gives the model's (padded) vocab_size.
// Anything else (normalizers, byte fallback, dropout, prefix spaces) is kNotSupported, named.
//
// Thread safety: free functions; results are owned by the caller.

#include <filesystem>
#include <memory>

#include "common/result.h"
#include "inference/tokenizer.h"

namespace sluice::inference {

// Loads `dir`/tokenizer.json (required), `dir`/tokenizer_config.json and `dir`/config.json
// (optional). kNotFound without tokenizer.json; kInvalidArgument naming the file and field for
// malformed content; kNotSupported for features outside the list above.
Result<std::unique_ptr<Tokenizer>> open_hf_tokenizer(const std::filesystem::path& dir);

// Writes tokenizer.json and tokenizer_config.json for `tokenizer` into `dir` (created if
// missing), such that open_hf_tokenizer(dir) encodes every text to the same ids. The merges are
// every two-token split of every token ordered by rank, as Hugging Face's tiktoken converter
// writes them; `ignore_merges` is set so that whole-token pieces match tiktoken. Each file is
// written under a temporary name and renamed into place. kIoError when writing fails.
Status write_hf_tokenizer_files(const Tokenizer& tokenizer, const std::filesystem::path& dir);

}  // namespace sluice::inference
