#include "connectors/detail/file_scan.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <set>

#include "common/log.h"
#include "connectors/detail/file_util.h"
#include "connectors/detail/utf8_text.h"
#include "connectors/parsers.h"

namespace sluice::connectors::detail {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string escape_path(const std::string& path) {
    std::string out;
    for (char c : path) {
        if (c == '%') {
            out += "%25";
        } else if (c == '#') {
            out += "%23";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string document_key(const std::string& path, const std::string& subkey) {
    return subkey.empty() ? escape_path(path) : escape_path(path) + "#" + subkey;
}

namespace {

bool hidden(const fs::path& name) {
    const std::string text = name.filename().string();
    return !text.empty() && text[0] == '.';
}

}  // namespace

Result<std::map<std::string, Listed>> list_files(const fs::path& root, int inotify_fd) {
    std::map<std::string, Listed> out;
    std::error_code root_ec;
    if (!fs::is_directory(root, root_ec)) {
        return unavailable("file source root '" + root.string() +
                           "' is not a folder any more (renamed, removed or unmounted?)" +
                           (root_ec ? ": " + root_ec.message() : std::string()));
    }
    // The recursive iterator skips a root it may not read (skip_permission_denied) as if it
    // were empty; opening it plainly first tells the two apart.
    fs::directory_iterator probe(root, root_ec);
    if (root_ec) {
        return unavailable("file source root '" + root.string() +
                           "' cannot be read: " + root_ec.message());
    }
    constexpr std::uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                                    IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB;
    if (inotify_fd >= 0) {
        ::inotify_add_watch(inotify_fd, root.c_str(), kMask);
    }
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const fs::directory_entry& entry = *it;
        std::error_code status_ec;
        if (hidden(entry.path()) || entry.is_symlink(status_ec)) {
            if (entry.is_directory(status_ec)) {
                it.disable_recursion_pending();
            }
            continue;
        }
        if (entry.is_directory(status_ec)) {
            if (inotify_fd >= 0) {
                ::inotify_add_watch(inotify_fd, entry.path().c_str(), kMask);
            }
            continue;
        }
        if (!entry.is_regular_file(status_ec)) {
            continue;
        }
        std::string relative = entry.path().lexically_relative(root).generic_string();
        if (format_for_path(relative) == Format::kUnknown) {
            continue;
        }
        struct stat info {};
        if (::lstat(entry.path().c_str(), &info) != 0) {
            continue;  // gone between listing and stat
        }
        Listed listed{static_cast<std::uint64_t>(info.st_size),
                      info.st_mtim.tv_sec * 1'000'000'000LL + info.st_mtim.tv_nsec};
        if (!is_valid_utf8(relative)) {
            listed.bad_name = true;
            out.emplace(escape_invalid_utf8(relative), listed);
            continue;
        }
        out[relative] = listed;
    }
    if (ec) {
        return unavailable("listing file source root '" + root.string() +
                           "' stopped early: " + ec.message());
    }
    return out;
}

namespace {

// The documents a file produces, by subkey ("" for the whole file), and per-record errors.
struct Parsed {
    std::map<std::string, Document> docs;
    std::vector<std::string> row_errors;
};

Result<Parsed> parse_file(const std::string& path, std::string_view bytes,
                          const FileSourceConfig& config) {
    const Format format = format_for_path(path);
    // Text in another encoding: invalid sequences become U+FFFD, as browsers read them, so the
    // document is still indexed and every answer quoting it is valid JSON. PDF text comes from
    // poppler as UTF-8.
    std::string replaced;
    if (format != Format::kPdf && !is_valid_utf8(bytes)) {
        replaced = replace_invalid_utf8(bytes);
        bytes = replaced;
    }
    Parsed parsed;
    json base{{"path", path}, {"format", format_name(format)}};
    if (is_row_format(format)) {
        RowMapping mapping = config.rows;
        if (mapping.default_acl.empty()) {
            mapping.default_acl = config.acl;
        }
        Result<RowParse> rows = format == Format::kCsv
                                    ? parse_csv(bytes, mapping)
                                    : parse_json_rows(bytes, mapping, format == Format::kJsonl);
        if (!rows) {
            return rows.status();
        }
        for (RowDocument& row : rows->rows) {
            Document document = std::move(row.document);
            for (const auto& [name, value] : base.items()) {
                document.metadata[name] = value;
            }
            parsed.docs.emplace(row.key, std::move(document));
        }
        for (const RowError& error : rows->errors) {
            parsed.row_errors.push_back(error.where + ": " + error.message);
        }
        return parsed;
    }
    Document document;
    switch (format) {
        case Format::kMarkdown: document = parse_markdown(bytes); break;
        case Format::kHtml: document = parse_html(bytes); break;
        case Format::kPdf: {
            SLUICE_ASSIGN_OR_RETURN(document, parse_pdf(bytes));
            break;
        }
        default: document = parse_text(bytes); break;
    }
    for (const auto& [name, value] : base.items()) {
        document.metadata[name] = value;
    }
    document.acl = config.acl;
    parsed.docs.emplace("", std::move(document));
    return parsed;
}

std::string document_hash(const Document& document) {
    const json value{{"t", document.text}, {"m", document.metadata}, {"a", to_json(document.acl)}};
    // 64 bits of SHA-256 tell an edited document from an unchanged one; it is not a security
    // boundary, and it keeps manifests of large CSV files small.
    return detail::sha256_hex(dump_json(value)).substr(0, 16);
}

ChangeEvent delete_event(const std::string& path, const std::string& subkey) {
    ChangeEvent event;
    event.key = document_key(path, subkey);
    event.op = Op::kDelete;
    event.offset = "file:" + event.key;
    return event;
}

// Stands for the content hash of a file whose name is not valid UTF-8 (never read); no
// SHA-256 hex looks like it, so it marks no rename.
constexpr char kBadNameHash[] = "bad-name";

FileOutcome unreadable(const std::string& path, const FileEntry* held, const Listed& listed,
                       std::string hash, const std::string& message) {
    FileOutcome outcome;
    FileEntry entry;
    entry.hash = std::move(hash);
    entry.size = listed.size;
    entry.mtime_ns = listed.mtime_ns;
    entry.error = message;
    if (held != nullptr) {
        entry.docs = held->docs;  // keep what the consumer has; the file may be fixed later
    }
    outcome.entry = std::move(entry);
    outcome.errors.push_back({escape_path(path), message, "file:" + escape_path(path)});
    return outcome;
}

}  // namespace

FileOutcome process_file(const std::string& path, const FileEntry* held, const Listed* listed,
                         const std::map<std::string, std::string>& gone_by_hash,
                         const FileSourceConfig& config) {
    FileOutcome outcome;
    if (listed == nullptr) {
        for (const auto& [subkey, hash] : held->docs) {
            outcome.events.emplace_back(subkey, delete_event(path, subkey));
        }
        return outcome;
    }
    if (held != nullptr && !held->hash.empty() && held->size == listed->size &&
        held->mtime_ns == listed->mtime_ns) {
        outcome.entry = *held;
        return outcome;
    }
    if (listed->bad_name) {
        // Remembered by size and mtime like an unreadable file, so it is reported once per
        // version; it holds no documents (any held before are deleted).
        FileOutcome bad =
            unreadable(path, nullptr, *listed, kBadNameHash,
                       "file name is not valid UTF-8 (shown with its invalid bytes as \\xNN); "
                       "rename it to index it");
        if (held != nullptr) {
            for (const auto& [subkey, hash] : held->docs) {
                bad.events.emplace_back(subkey, delete_event(path, subkey));
            }
        }
        return bad;
    }
    auto bytes = detail::read_file(fs::path(config.root) / path, config.max_file_bytes);
    if (!bytes) {
        if (bytes.status().code() == StatusCode::kNotFound) {
            return process_file(path, held, nullptr, gone_by_hash, config);
        }
        // Remembered by size and mtime, so that it is reported once per version of the file.
        return unreadable(path, held, *listed, "unreadable", bytes.status().message());
    }
    const std::string hash = detail::sha256_hex(*bytes);
    if (held != nullptr && held->hash == hash) {
        outcome.entry = *held;
        outcome.entry->size = listed->size;
        outcome.entry->mtime_ns = listed->mtime_ns;
        return outcome;
    }
    auto parsed = parse_file(path, *bytes, config);
    if (!parsed) {
        return unreadable(path, held, *listed, hash, parsed.status().message());
    }
    FileEntry entry;
    entry.hash = hash;
    entry.size = listed->size;
    entry.mtime_ns = listed->mtime_ns;
    for (const std::string& message : parsed->row_errors) {
        outcome.errors.push_back({escape_path(path), message, "file:" + escape_path(path)});
    }
    const std::string* renamed_from = nullptr;
    if (held == nullptr) {
        if (auto it = gone_by_hash.find(hash); it != gone_by_hash.end()) {
            renamed_from = &it->second;
        }
    }
    std::set<std::string> subkeys;
    for (const auto& [subkey, document] : parsed->docs) {
        subkeys.insert(subkey);
    }
    if (held != nullptr) {
        for (const auto& [subkey, doc_hash] : held->docs) {
            subkeys.insert(subkey);
        }
    }
    for (const std::string& subkey : subkeys) {
        auto found = parsed->docs.find(subkey);
        if (found == parsed->docs.end()) {
            outcome.events.emplace_back(subkey, delete_event(path, subkey));
            continue;
        }
        const std::string doc_hash = document_hash(found->second);
        entry.docs.emplace(subkey, doc_hash);
        if (held != nullptr) {
            auto before = held->docs.find(subkey);
            if (before != held->docs.end() && before->second == doc_hash) {
                continue;
            }
        }
        ChangeEvent event;
        event.key = document_key(path, subkey);
        event.op = Op::kUpsert;
        event.offset = "file:" + event.key;
        event.document = std::move(found->second);
        if (renamed_from != nullptr) {
            event.document.metadata["renamed_from"] = *renamed_from;
        }
        outcome.events.emplace_back(subkey, std::move(event));
    }
    outcome.entry = std::move(entry);
    return outcome;
}


}  // namespace sluice::connectors::detail
