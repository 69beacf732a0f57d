#include "inference/safetensors_writer.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

namespace sluice::inference {

namespace {

using nlohmann::json;

Status check_tensors(const std::vector<TensorToWrite>& tensors) {
    std::set<std::string> names;
    for (const TensorToWrite& tensor : tensors) {
        if (!names.insert(tensor.name).second) {
            return invalid_argument("tensor '" + tensor.name + "' is written twice");
        }
        int64_t n_elements = 1;
        for (int64_t dim : tensor.shape) {
            n_elements *= dim;
        }
        const int64_t expected = n_elements * dtype_size(tensor.dtype);
        if (static_cast<int64_t>(tensor.bytes.size()) != expected) {
            return invalid_argument("tensor '" + tensor.name + "': " +
                                    std::to_string(tensor.bytes.size()) + " bytes, expected " +
                                    std::to_string(expected));
        }
    }
    return Status::ok_status();
}

// The last step of every write: the finished temporary file takes the final name at once.
Status rename_into_place(const std::string& tmp, const std::string& path) {
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        return io_error("rename '" + tmp + "' to '" + path + "': " + ec.message());
    }
    return Status::ok_status();
}

Status write_file(const std::string& path, const std::string& header,
                  const std::vector<const TensorToWrite*>& tensors) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) {
            return io_error("cannot create '" + tmp + "'");
        }
        uint64_t length = header.size();
        unsigned char prefix[8];
        for (int i = 0; i < 8; ++i) {
            prefix[i] = static_cast<unsigned char>(length >> (8 * i));
        }
        out.write(reinterpret_cast<const char*>(prefix), 8);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
        for (const TensorToWrite* tensor : tensors) {
            out.write(reinterpret_cast<const char*>(tensor->bytes.data()),
                      static_cast<std::streamsize>(tensor->bytes.size()));
        }
        out.flush();
        if (!out) {
            return io_error("writing '" + tmp + "' failed");
        }
    }
    return rename_into_place(tmp, path);
}

// Writes the tensors in the given order, data packed back to back after an 8-aligned header.
Status write_group(const std::string& path, const std::vector<const TensorToWrite*>& tensors) {
    json header = json::object();
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const TensorToWrite* tensor : tensors) {
        header[tensor->name] = {{"dtype", std::string(dtype_name(tensor->dtype))},
                                {"shape", tensor->shape},
                                {"data_offsets", {offset, offset + tensor->bytes.size()}}};
        offset += tensor->bytes.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    return write_file(path, text, tensors);
}

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
    SLUICE_RETURN_IF_ERROR(check_tensors(tensors));
    std::vector<const TensorToWrite*> group;
    for (const TensorToWrite& tensor : tensors) {
        group.push_back(&tensor);
    }
    return write_group(path, group);
}

Status write_safetensors_sharded(const std::string& dir, const std::vector<TensorToWrite>& tensors,
                                 int64_t max_shard_bytes) {
    SLUICE_RETURN_IF_ERROR(check_tensors(tensors));
    if (max_shard_bytes <= 0) {
        return invalid_argument("max shard bytes must be positive, found " +
                                std::to_string(max_shard_bytes));
    }
    std::vector<std::vector<const TensorToWrite*>> shards(1);
    int64_t shard_bytes = 0;
    int64_t total_bytes = 0;
    for (const TensorToWrite& tensor : tensors) {
        const auto size = static_cast<int64_t>(tensor.bytes.size());
        if (!shards.back().empty() && shard_bytes + size > max_shard_bytes) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shards.back().push_back(&tensor);
        shard_bytes += size;
        total_bytes += size;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::map<std::string, std::string> weight_map;
    for (size_t i = 0; i < shards.size(); ++i) {
        const std::string name = safetensors_shard_name(i, shards.size());
        SLUICE_RETURN_IF_ERROR(write_group((std::filesystem::path(dir) / name).string(), shards[i]));
        for (const TensorToWrite* tensor : shards[i]) {
            weight_map[tensor->name] = name;
        }
    }
    return write_safetensors_index(dir, weight_map, total_bytes);
}

std::string safetensors_shard_name(size_t index, size_t count) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", index + 1, count);
    return name;
}

Status write_safetensors_index(const std::string& dir,
                               const std::map<std::string, std::string>& weight_map,
                               int64_t total_bytes) {
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    const std::string path = (std::filesystem::path(dir) / "model.safetensors.index.json").string();
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << index.dump(2) << "\n";
        out.flush();
        if (!out) {
            return io_error("writing '" + tmp + "' failed");
        }
    }
    return rename_into_place(tmp, path);
}

}  // namespace sluice::inference
