// validate_metadata (index.h): which metadata field names a document may carry, and that what
// it stores is UTF-8.
#include <utf8proc.h>

#include "retrieval/index.h"

namespace sluice::retrieval {

namespace {

bool is_valid_utf8(std::string_view text) {
    const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    for (std::size_t at = 0; at < text.size();) {
        utf8proc_int32_t code_point = 0;
        auto read = utf8proc_iterate(bytes + at, static_cast<utf8proc_ssize_t>(text.size() - at),
                                     &code_point);
        if (read <= 0) {
            return false;
        }
        at += static_cast<std::size_t>(read);
    }
    return true;
}

}  // namespace

Status validate_metadata(const Document& document) {
    // What is stored comes back in JSON answers: a key, text, title or uri that is not UTF-8
    // would make every query returning it fail. The offending string is never quoted.
    if (!is_valid_utf8(document.key)) {
        return invalid_argument("a document key of " + std::to_string(document.key.size()) +
                                " bytes is not valid UTF-8");
    }
    auto refuse = [&](const std::string& why) {
        return invalid_argument("document '" + document.key + "': " + why);
    };
    if (!is_valid_utf8(document.text)) {
        return refuse("its text is not valid UTF-8");
    }
    if (!is_valid_utf8(document.title) || !is_valid_utf8(document.uri)) {
        return refuse("its title or uri is not valid UTF-8");
    }
    for (const auto& [name, value] : document.metadata) {
        const std::string field = "metadata field '" + name + "'";
        if (name == "uri" || name == "title") {
            const std::string& own = name == "uri" ? document.uri : document.title;
            const auto* text = std::get_if<std::string>(&value);
            if (text == nullptr || *text != own) {
                return refuse(field + " is reserved: filters and results name the document's " +
                              name + " by it, and it holds another value");
            }
            continue;
        }
        if (name == "doc_key") {
            return refuse(field + " is reserved: filters name the document's key by it");
        }
        if (name == "id" || name == "chunk_id" || name == "text" || name == "section_path" ||
            name == "char_begin" || name == "char_end" || name == "score") {
            return refuse(field + " is reserved: query results name a column of their own by it");
        }
        if (name.empty()) {
            return refuse("a metadata field has an empty name, which no filter can name");
        }
        // Names a filter cannot spell ("First Name", "and") are kept: sources name columns so,
        // and refusing them would refuse every row of such a table; they are not filterable.
        if (!is_valid_utf8(name)) {
            // The name itself is left out: an error carrying it could not be JSON.
            return refuse("a metadata field name of " + std::to_string(name.size()) +
                          " bytes is not valid UTF-8, which no filter can name");
        }
        if (const auto* text = std::get_if<std::string>(&value);
            text != nullptr && !is_valid_utf8(*text)) {
            return refuse(field + " holds a value that is not valid UTF-8");
        }
    }
    return Status::ok_status();
}

}  // namespace sluice::retrieval
