#include "app/source_bindings.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "app/atomic_file.h"
#include "retrieval/index_settings.h"

namespace sluice::app {
namespace {

using nlohmann::json;

std::filesystem::path bindings_path(const std::filesystem::path& data_dir) {
    return data_dir / "sources" / "bindings.json";
}

Status write_bindings(const std::filesystem::path& data_dir,
                      const std::map<std::string, std::string>& bindings) {
    std::error_code ec;
    std::filesystem::create_directories(data_dir / "sources", ec);
    if (ec) {
        std::string message = "cannot create ";
        message.append((data_dir / "sources").string()).append(": ").append(ec.message());
        return io_error(message);
    }
    json out{{"version", 1}, {"bindings", bindings}};
    return write_file_atomically(bindings_path(data_dir), out.dump(2) + "\n");
}

}  // namespace

Result<std::map<std::string, std::string>> read_source_bindings(
    const std::filesystem::path& data_dir) {
    std::map<std::string, std::string> out;
    const auto path = bindings_path(data_dir);
    std::ifstream in(path);
    if (!in) {
        return out;  // no source bound yet
    }
    std::stringstream text;
    text << in.rdbuf();
    json parsed = json::parse(text.str(), nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("bindings") ||
        !parsed["bindings"].is_object()) {
        std::string message = path.string();
        message += ": expected {\"version\": 1, \"bindings\": {}}";
        return data_loss(message);
    }
    for (const auto& [source, index] : parsed["bindings"].items()) {
        if (!index.is_string()) {
            std::string message = path.string();
            message.append(": bindings.").append(source).append(": expected an index name");
            return data_loss(message);
        }
        out[source] = index.get<std::string>();
    }
    return out;
}

Status bind_source(const std::filesystem::path& data_dir, const std::string& source,
                   const std::string& index) {
    SLUICE_RETURN_IF_ERROR(retrieval::validate_index_name(index));
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_source_bindings(data_dir));
    bindings[source] = index;
    return write_bindings(data_dir, bindings);
}

Status unbind_source(const std::filesystem::path& data_dir, const std::string& source) {
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_source_bindings(data_dir));
    if (bindings.erase(source) == 0) {
        return Status();
    }
    return write_bindings(data_dir, bindings);
}

Result<std::optional<std::string>> bound_index(const std::filesystem::path& data_dir,
                                               const std::string& source) {
    SLUICE_ASSIGN_OR_RETURN(auto bindings, read_source_bindings(data_dir));
    auto it = bindings.find(source);
    if (it == bindings.end()) {
        return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
}

}  // namespace sluice::app
