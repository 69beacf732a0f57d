#include "app/console_routes.h"

#include <map>
#include <string>

#include "app/http_errors.h"
#include "app/web_assets.h"

namespace sluice::app {
namespace {

struct Served {
    const WebAsset* asset;
    std::string etag;
};

// FNV-1a over the content: the ETag changes whenever a file does.
std::string etag_of(std::string_view content) {
    std::uint64_t hash = 1469598103934665603ULL;
    for (char c : content) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 1099511628211ULL;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (int i = 0; i < 16; ++i) {
        out += kHex[(hash >> (60 - 4 * i)) & 0xf];
    }
    return out + "\"";
}

std::map<std::string, Served, std::less<>> served_files() {
    std::map<std::string, Served, std::less<>> files;
    for (const WebAsset& asset : web_assets()) {
        files.emplace(std::string(asset.path), Served{&asset, etag_of(asset.content)});
    }
    return files;
}

void set_security_headers(httplib::Response& res) {
    res.set_header("Content-Security-Policy", kConsoleContentSecurityPolicy);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Cross-Origin-Opener-Policy", "same-origin");
}

void redirect_to_console(const RequestInfo&, const httplib::Request&, httplib::Response& res) {
    res.status = 302;
    res.set_header("Location", kConsolePrefix);
    res.set_header("Cache-Control", "no-store");
}

}  // namespace

void add_console_routes(HttpServer& server) {
    auto files = std::make_shared<const std::map<std::string, Served, std::less<>>>(
        served_files());
    server.route("GET", "/", redirect_to_console);
    server.route("GET", "/console", redirect_to_console);
    server.route("GET", "/console/(.*)",
                 [files](const RequestInfo& info, const httplib::Request& req,
                         httplib::Response& res) {
                     std::string path = req.matches[1].str();
                     if (path.empty()) {
                         path = "index.html";
                     }
                     auto found = files->find(path);
                     if (found == files->end()) {
                         send_error(res, 404, "not_found", "no console file " + req.path,
                                    info.request_id);
                         return;
                     }
                     const Served& file = found->second;
                     set_security_headers(res);
                     res.set_header("Cache-Control", "no-cache");
                     res.set_header("ETag", file.etag);
                     if (req.get_header_value("If-None-Match") == file.etag) {
                         res.status = 304;
                         return;
                     }
                     res.set_content(std::string(file.asset->content),
                                     std::string(file.asset->content_type));
                 });
}

}  // namespace sluice::app
