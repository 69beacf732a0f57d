#pragma once
// Reading Hugging Face safetensors checkpoints: one file or a sharded folder
// (`model.safetensors.index.json` + shards), memory-mapped.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of JSON mapping tensor
// names to {dtype, shape, data_offsets: [begin, end)} (offsets relative to the data section that
// follows the header), and the data. Every header is validated before any tensor is handed out:
// a bad length, bad JSON, an unknown dtype, offsets outside the file, a size that disagrees with
// dtype and shape, or overlapping ranges is kDataLoss naming the file and, where there is one, the
// tensor. Nothing in a file can make the reader crash or read outside the mapping.
//
// Ownership: a Checkpoint owns its mappings; TensorViews borrow from it and stay valid while the
// Checkpoint lives. Thread safety: immutable after open; concurrent reads are safe.

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "inference/dtype.h"

namespace sluice::inference {

// One tensor entry of a validated header.
struct TensorInfo {
    std::string name;
    DType dtype = DType::kF32;
    std::vector<int64_t> shape;
    uint64_t begin = 0;  // offsets into the data section, end exclusive
    uint64_t end = 0;
};

// Parses and validates the header of the safetensors bytes `file`. Tensors come back sorted by
// name. `source` names the file in error messages. The mutation test and the fuzz target drive
// this function directly.
Result<std::vector<TensorInfo>> parse_safetensors_header(std::span<const uint8_t> file,
                                                         const std::string& source);

// A read-only memory mapping of a whole file; move-only, unmapped on destruction.
class MappedFile {
public:
    static Result<MappedFile> open(const std::string& path);
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    std::span<const uint8_t> bytes() const { return {data_, size_}; }
    const std::string& path() const { return path_; }

private:
    MappedFile(std::string path, const uint8_t* data, size_t size)
        : path_(std::move(path)), data_(data), size_(size) {}
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// A tensor's metadata and its bytes inside a mapping (any alignment).
struct TensorView {
    std::string name;
    DType dtype = DType::kF32;
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;
    int64_t n_bytes = 0;
    std::string file;  // the file holding it, for messages

    int64_t n_elements() const;
};

// "[96, 64]"
std::string format_shape(std::span<const int64_t> shape);

class Checkpoint {
public:
    // Opens `path`: a .safetensors file, or a folder holding `model.safetensors.index.json`
    // (sharded; every shard it names must exist, a tensor may live in one shard only and must be
    // where the index says) or else `model.safetensors`. kNotFound when none is there.
    static Result<std::unique_ptr<Checkpoint>> open(const std::string& path);

    // nullptr when absent.
    const TensorView* find(const std::string& name) const;
    // Whether the tensor's bytes lie in one of this checkpoint's file mappings (a derived
    // checkpoint's: its base's), not in memory it owns.
    bool is_mapped(const TensorView& tensor) const;
    // For a tensor that was copied and will not be read again: drops its pages from the
    // process's resident set (madvise MADV_DONTNEED over the whole pages inside its bytes) when
    // is_mapped; bytes anywhere else are left alone. Only residency changes: the mappings are
    // read-only and private, so a later read maps the same bytes again from the file.
    void release_pages(const TensorView& tensor) const;

    // All tensors, sorted by name.
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }
    size_t n_files() const { return files_.size(); }

    // A tensor held in memory rather than in a mapped file.
    struct OwnedTensor {
        std::string name;
        DType dtype = DType::kF32;
        std::vector<int64_t> shape;
        std::vector<uint8_t> bytes;  // n_elements · dtype_size
    };
    // A checkpoint with `base`'s tensors, less those named in `removed`, plus `added` (which
    // replace base tensors of the same name). It owns `base` (whose mappings its other views still
    // borrow) and the added bytes. Used to present a quantised checkpoint to a backend as the
    // plain one it dequantises to. SLUICE_CHECKs that each added tensor's size fits its shape.
    static std::unique_ptr<Checkpoint> derive(std::unique_ptr<Checkpoint> base,
                                              std::vector<OwnedTensor> added,
                                              const std::vector<std::string>& removed);

    struct PrivateTag {};
    explicit Checkpoint(PrivateTag) {}

private:
    std::unique_ptr<Checkpoint> base_;
    std::vector<std::vector<uint8_t>> owned_;

    Status add_file(const std::string& path, const std::map<std::string, std::string>* expected);

    std::vector<MappedFile> files_;
    std::map<std::string, TensorView> tensors_;
};

}  // namespace sluice::inference
