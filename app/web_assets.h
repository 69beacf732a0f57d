#pragma once
// The web console's files (web/console/**), embedded into the binary at build time by
// cmake/SluiceWebAssets.cmake.
//
// Thread safety: immutable.

#include <span>
#include <string_view>

namespace sluice::app {

struct WebAsset {
    std::string_view path;          // relative to web/console, e.g. "js/app.js"
    std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
    std::string_view content;
};

// Every embedded file, sorted by path.
std::span<const WebAsset> web_assets();

}  // namespace sluice::app
