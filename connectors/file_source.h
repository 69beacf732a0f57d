#pragma once
// FileSource: a directory tree as a source of documents.
//
// Every poll rescans the tree (the truth) and compares it with the manifest named by the
// checkpoint: path → (size, mtime, content hash, and the hash of each document the file
// produced). A file whose size and mtime are unchanged is not read; a file whose content hash is
// unchanged produces no events; a changed file is parsed and its documents compared one by one
// (a CSV with one edited row produces one upsert). Files that disappear produce deletes; a rename
// is a delete of the old key and an upsert of the new one, the upsert's metadata naming
// "renamed_from". inotify wakes wait() early; it is never trusted for what changed.
//
// Keys: the path relative to the root ("guides/setup.md"); row files give one document per row,
// keyed "<path>#<row key>". '#' and '%' in paths are written %23 and %25.
//
// Checkpoints: {"v":1,"m":"<manifest id>"}, where the manifest is stored, content-addressed,
// in <state_dir>/manifests/<id>.json (written atomically). The manifest always describes what a
// consumer holds after applying the events up to that checkpoint, including a batch cut in the
// middle of a large CSV, so that polling again from any checkpoint is idempotent: the same
// directory gives the same events and the same next checkpoint. acknowledge() removes manifests
// older than the acknowledged one.
//
// Errors in single files (a PDF that does not parse, a CSV row with too many fields, a file over
// the size limit) are ErrorRecords keyed by the file's key. kSkip: the file's previous documents
// stay as they were and the same file version is not reported again. kPause: the batch stops
// before the file until it changes.
//
// Hidden files and folders (name starting with '.') and symbolic links are not read; files of
// unknown formats are ignored.
//
// Thread safety: owned by one thread; wake() from any thread.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "connectors/row_mapping.h"
#include "connectors/source.h"

namespace sluice::connectors {

struct FileSourceConfig {
    std::string root;
    std::string state_dir;  // created when missing
    RowMapping rows;        // for CSV/JSON/JSONL; no key: records are keyed by their number
    Acl acl;                // every document's ACL (rows: unless their ACL columns name one)
    ErrorPolicy on_error = ErrorPolicy::kSkip;
    std::uint64_t max_file_bytes = 64ull << 20;
};

// {"root", "rows": {...}, "acl": {...}, "on_error": "skip"|"pause", "max_file_bytes"}; the
// state folder is given by whoever owns the source. Errors: kInvalidArgument naming the field.
Result<FileSourceConfig> file_config_from_json(const nlohmann::json& value);
nlohmann::json to_json(const FileSourceConfig& config);

namespace detail {
struct FileSourceState;
}

class FileSource final : public Source {
public:
    // Errors: kNotFound when the root is not a folder; kIoError for the state folder or inotify.
    static Result<std::unique_ptr<FileSource>> open(FileSourceConfig config);
    ~FileSource() override;

    std::string_view kind() const override { return "file"; }
    Result<Batch> poll(std::string_view checkpoint, const PollOptions& options) override;
    Status acknowledge(std::string_view checkpoint) override;
    Result<bool> wait(std::chrono::milliseconds timeout) override;
    void wake() override;
    Result<nlohmann::json> status() override;

    explicit FileSource(std::unique_ptr<detail::FileSourceState> state);

private:
    std::unique_ptr<detail::FileSourceState> state_;
};

}  // namespace sluice::connectors
