#include "inference/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "common/check.h"

#include "common/check.h"

namespace sluice::inference {

namespace {

using nlohmann::json;

// The safetensors format caps its header at 100 MB; larger is a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;
constexpr int kMaxRank = 8;

Status header_error(const std::string& source, const std::string& what) {
    return data_loss("safetensors '" + source + "': " + what);
}

bool read_u64(const json& value, uint64_t* out) {
    if (value.is_number_unsigned()) {
        *out = value.get<uint64_t>();
        return true;
    }
    if (value.is_number_integer() && value.get<int64_t>() >= 0) {
        *out = static_cast<uint64_t>(value.get<int64_t>());
        return true;
    }
    return false;
}

Result<TensorInfo> parse_entry(const std::string& source, const std::string& name,
                               const json& entry, uint64_t data_size) {
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) {
        return header_error(source, where + ": expected an object");
    }
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || shape_it == entry.end() || offsets_it == entry.end()) {
        return header_error(source, where + ": needs dtype, shape and data_offsets");
    }
    if (!dtype_it->is_string()) {
        return header_error(source, where + ": dtype is not a string");
    }
    auto dtype = parse_dtype(dtype_it->get<std::string>());
    if (!dtype) {
        return header_error(source, where + ": unknown dtype " + dtype_it->dump());
    }
    TensorInfo info;
    info.name = name;
    info.dtype = *dtype;
    if (!shape_it->is_array() || shape_it->size() > kMaxRank) {
        return header_error(source, where + ": shape must be an array of at most 8 sizes");
    }
    // The element count is bounded by the data size, so products are checked before they grow.
    uint64_t n_elements = 1;
    for (const json& dim : *shape_it) {
        uint64_t size = 0;
        if (!read_u64(dim, &size)) {
            return header_error(source, where + ": shape " + shape_it->dump() + " is not sizes");
        }
        if (size != 0 && n_elements > data_size / size) {
            n_elements = data_size + 1;  // certainly too large; reported below
        } else {
            n_elements *= size;
        }
        info.shape.push_back(static_cast<int64_t>(std::min<uint64_t>(size, INT64_MAX)));
    }
    if (!offsets_it->is_array() || offsets_it->size() != 2 ||
        !read_u64((*offsets_it)[0], &info.begin) || !read_u64((*offsets_it)[1], &info.end)) {
        return header_error(source, where + ": data_offsets must be two offsets");
    }
    if (info.begin > info.end || info.end > data_size) {
        return header_error(source, where + ": data_offsets [" + std::to_string(info.begin) +
                                        ", " + std::to_string(info.end) +
                                        ") outside the data section of " +
                                        std::to_string(data_size) + " bytes");
    }
    const uint64_t element_bytes = static_cast<uint64_t>(dtype_size(info.dtype));
    if (n_elements > data_size || n_elements * element_bytes != info.end - info.begin) {
        return header_error(source, where + ": " + std::to_string(info.end - info.begin) +
                                        " bytes for shape " + format_shape(info.shape) + " of " +
                                        std::string(dtype_name(info.dtype)));
    }
    return info;
}

}  // namespace

Result<std::vector<TensorInfo>> parse_safetensors_header(std::span<const uint8_t> file,
                                                         const std::string& source) {
    if (file.size() < 8) {
        return header_error(source, "file of " + std::to_string(file.size()) +
                                        " bytes is shorter than the 8-byte header length");
    }
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; --i) {
        header_bytes = (header_bytes << 8) | file[static_cast<size_t>(i)];
    }
    if (header_bytes > kMaxHeaderBytes || header_bytes > file.size() - 8) {
        return header_error(source, "header length " + std::to_string(header_bytes) +
                                        " exceeds the file of " + std::to_string(file.size()) +
                                        " bytes");
    }
    const auto* header_begin = file.data() + 8;
    json header = json::parse(header_begin, header_begin + header_bytes, nullptr,
                              /*allow_exceptions=*/false);
    if (header.is_discarded()) {
        return header_error(source, "header is not valid JSON");
    }
    if (!header.is_object()) {
        return header_error(source, "header is not a JSON object");
    }
    const uint64_t data_size = file.size() - 8 - header_bytes;
    std::vector<TensorInfo> tensors;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it.value().is_object()) {
                return header_error(source, "__metadata__ is not an object");
            }
            continue;
        }
        SLUICE_ASSIGN_OR_RETURN(TensorInfo info, parse_entry(source, it.key(), it.value(),
                                                             data_size));
        tensors.push_back(std::move(info));
    }
    // Ranges may not share bytes: a writer that aliased tensors, or a corrupted offset.
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& info : tensors) {
        if (info.end > info.begin) {
            by_offset.push_back(&info);
        }
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        if (by_offset[i]->begin < by_offset[i - 1]->end) {
            return header_error(source, "tensors '" + by_offset[i - 1]->name + "' and '" +
                                            by_offset[i]->name + "' overlap");
        }
    }
    return tensors;  // json objects iterate in key order, so this is sorted by name
}

Result<MappedFile> MappedFile::open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return not_found("file '" + path + "' does not exist");
        }
        return io_error("open '" + path + "': " + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        Status status = io_error("stat '" + path + "': " + std::strerror(errno));
        ::close(fd);
        return status;
    }
    const size_t size = static_cast<size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        return MappedFile(path, nullptr, 0);
    }
    void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);  // the mapping keeps the file referenced
    if (data == MAP_FAILED) {
        return io_error("mmap '" + path + "': " + std::strerror(errno));
    }
    return MappedFile(path, static_cast<const uint8_t*>(data), size);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
    if (this != &other) {
        if (data_ != nullptr) {
            ::munmap(const_cast<uint8_t*>(data_), size_);
        }
        path_ = std::move(other.path_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

bool Checkpoint::is_mapped(const TensorView& tensor) const {
    const bool here = std::any_of(files_.begin(), files_.end(), [&](const MappedFile& file) {
        const std::span<const uint8_t> bytes = file.bytes();
        return tensor.data >= bytes.data() &&
               tensor.data + tensor.n_bytes <= bytes.data() + bytes.size();
    });
    // A derived checkpoint's views of its base still point into the base's mappings.
    return here || (base_ != nullptr && base_->is_mapped(tensor));
}

void Checkpoint::release_pages(const TensorView& tensor) const {
    // Only ever on bytes of our file mappings: MADV_DONTNEED on memory the process owns (a
    // tensor held in a buffer) would discard its contents.
    if (!is_mapped(tensor)) {
        return;
    }
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = reinterpret_cast<uintptr_t>(tensor.data);
    const uintptr_t first = (begin + page - 1) / page * page;
    const uintptr_t last = (begin + static_cast<uintptr_t>(tensor.n_bytes)) / page * page;
    if (last > first) {
        // A hint: on failure the pages simply stay resident.
        (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    }
}

MappedFile::~MappedFile() {
    if (data_ != nullptr) {
        ::munmap(const_cast<uint8_t*>(data_), size_);
    }
}

int64_t TensorView::n_elements() const {
    int64_t n = 1;
    for (int64_t dim : shape) {
        n *= dim;
    }
    return n;
}

std::string format_shape(std::span<const int64_t> shape) {
    std::string out = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        out += (i ? ", " : "") + std::to_string(shape[i]);
    }
    return out + "]";
}

Status Checkpoint::add_file(const std::string& path,
                            const std::map<std::string, std::string>* expected) {
    SLUICE_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
    SLUICE_ASSIGN_OR_RETURN(auto infos, parse_safetensors_header(file.bytes(), path));
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; --i) {
        header_bytes = (header_bytes << 8) | file.bytes()[static_cast<size_t>(i)];
    }
    const uint8_t* data_section = file.bytes().data() + 8 + header_bytes;
    const std::string file_name = std::filesystem::path(path).filename().string();
    for (TensorInfo& info : infos) {
        if (tensors_.count(info.name) != 0) {
            return data_loss("tensor '" + info.name + "' appears in both '" +
                             tensors_[info.name].file + "' and '" + file_name + "'");
        }
        if (expected != nullptr) {
            auto it = expected->find(info.name);
            if (it == expected->end() || it->second != file_name) {
                return data_loss("tensor '" + info.name + "' is in '" + file_name +
                                 "' but the index places it " +
                                 (it == expected->end() ? "nowhere" : "in '" + it->second + "'"));
            }
        }
        TensorView view{info.name, info.dtype, std::move(info.shape), data_section + info.begin,
                        static_cast<int64_t>(info.end - info.begin), file_name};
        tensors_.emplace(info.name, std::move(view));
    }
    files_.push_back(std::move(file));
    return Status::ok_status();
}

Result<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& path) {
    namespace fs = std::filesystem;
    auto checkpoint = std::make_unique<Checkpoint>(PrivateTag{});
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        SLUICE_RETURN_IF_ERROR(checkpoint->add_file(path, nullptr));
        return checkpoint;
    }
    const fs::path index_path = fs::path(path) / "model.safetensors.index.json";
    if (!fs::exists(index_path, ec)) {
        const fs::path single = fs::path(path) / "model.safetensors";
        if (!fs::exists(single, ec)) {
            return not_found("no model.safetensors or model.safetensors.index.json in '" + path +
                             "'");
        }
        SLUICE_RETURN_IF_ERROR(checkpoint->add_file(single.string(), nullptr));
        return checkpoint;
    }
    std::ifstream in(index_path);
    std::stringstream text;
    text << in.rdbuf();
    json index = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
        !index["weight_map"].is_object()) {
        return data_loss("index '" + index_path.string() + "': expected a JSON object with a "
                         "weight_map object");
    }
    std::map<std::string, std::string> weight_map;
    std::set<std::string> shards;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        const std::string shard = it.value().is_string() ? it.value().get<std::string>() : "";
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") {
            return data_loss("index '" + index_path.string() + "': tensor '" + it.key() +
                             "' maps to an invalid shard name " + it.value().dump());
        }
        weight_map[it.key()] = shard;
        shards.insert(shard);
    }
    for (const std::string& shard : shards) {
        SLUICE_RETURN_IF_ERROR(checkpoint->add_file((fs::path(path) / shard).string(), &weight_map));
    }
    for (const auto& [name, shard] : weight_map) {
        if (checkpoint->tensors_.count(name) == 0) {
            return data_loss("tensor '" + name + "': the index places it in '" + shard +
                             "', which does not hold it");
        }
    }
    return checkpoint;
}

std::unique_ptr<Checkpoint> Checkpoint::derive(std::unique_ptr<Checkpoint> base,
                                               std::vector<OwnedTensor> added,
                                               const std::vector<std::string>& removed) {
    auto derived = std::make_unique<Checkpoint>(PrivateTag{});
    derived->tensors_ = base->tensors_;
    for (const std::string& name : removed) {
        derived->tensors_.erase(name);
    }
    for (OwnedTensor& tensor : added) {
        int64_t n_elements = 1;
        for (const int64_t dim : tensor.shape) {
            n_elements *= dim;
        }
        SLUICE_CHECK(static_cast<int64_t>(tensor.bytes.size()) ==
                         n_elements * dtype_size(tensor.dtype),
                     "derived tensor '" + tensor.name + "' has the wrong byte count");
        derived->owned_.push_back(std::move(tensor.bytes));
        const std::vector<uint8_t>& bytes = derived->owned_.back();
        derived->tensors_[tensor.name] =
            TensorView{tensor.name, tensor.dtype, std::move(tensor.shape), bytes.data(),
                       static_cast<int64_t>(bytes.size()), "(in memory)"};
    }
    derived->base_ = std::move(base);
    return derived;
}

const TensorView* Checkpoint::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace sluice::inference
