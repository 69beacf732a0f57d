// PDF text through poppler-cpp: one text run per page, page starts recorded for citations.
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include <climits>
#include <memory>
#include <mutex>
#include <new>

#include "common/log.h"
#include "connectors/parsers.h"

namespace sluice::connectors {

namespace {

// Poppler reports parse problems through a process-wide callback (stderr by default). They
// are expected for damaged files, which the caller reports as error records, so they go to the
// debug log.
void route_poppler_messages() {
    static std::once_flag once;
    std::call_once(once, [] {
        poppler::set_debug_error_function(
            [](const std::string& message, void*) {
                log::debug("connectors.pdf", "poppler", {{"message", message}});
            },
            nullptr);
    });
}

}  // namespace

Result<Document> parse_pdf(std::string_view bytes) {
    route_poppler_messages();
    if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
        return invalid_argument("pdf of " + std::to_string(bytes.size()) +
                                " bytes: larger than poppler reads");
    }
    if (!bytes.starts_with("%PDF-")) {
        return invalid_argument("not a pdf: the file does not start with %PDF-");
    }
    // poppler-cpp is not built to throw, but allocation can; the error stays inside.
    try {
        std::unique_ptr<poppler::document> pdf(poppler::document::load_from_raw_data(
            bytes.data(), static_cast<int>(bytes.size())));
        if (pdf == nullptr) {
            return invalid_argument("pdf does not parse (damaged or truncated)");
        }
        if (pdf->is_locked()) {
            return invalid_argument("pdf is encrypted with a password");
        }
        Document document;
        nlohmann::json page_starts = nlohmann::json::array();
        const int pages = pdf->pages();
        for (int i = 0; i < pages; ++i) {
            if (i > 0) {
                document.text += '\f';
            }
            page_starts.push_back(document.text.size());
            std::unique_ptr<poppler::page> page(pdf->create_page(i));
            if (page == nullptr) {
                continue;
            }
            const std::vector<char> utf8 = page->text().to_utf8();
            // poppler ends a page's text with a form feed of its own; the separator above is
            // the only one kept, so pages are joined by exactly one '\f'.
            auto end = utf8.end();
            while (end != utf8.begin() && *(end - 1) == '\f') {
                --end;
            }
            document.text.append(utf8.begin(), end);
        }
        document.metadata["pages"] = pages;
        document.metadata["page_starts"] = std::move(page_starts);
        const poppler::ustring title = pdf->info_key("Title");
        if (!title.empty()) {
            const std::vector<char> utf8 = title.to_utf8();
            document.metadata["title"] = std::string(utf8.begin(), utf8.end());
        }
        return document;
    } catch (const std::bad_alloc&) {
        return Status(StatusCode::kResourceExhausted, "pdf: out of memory while parsing");
    }
}

}  // namespace sluice::connectors
