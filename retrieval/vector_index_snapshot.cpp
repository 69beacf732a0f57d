// VectorIndex's snapshot (vector_index.h): a length-prefixed header (magic, chunk-store
// sequence, factory, metric, dimension, the id table with tombstones) followed by FAISS's own
// serialisation, written to a temporary file, fsynced and renamed over the old one.
#include "retrieval/vector_index.h"

#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "retrieval/detail/codec.h"
#include "retrieval/detail/rw_lock.h"
#include "retrieval/detail/vector_index_state.h"

namespace sluice::retrieval {

namespace {

constexpr std::string_view kSnapshotMagic = "SLUICEVX1";

Status fsync_path(const std::filesystem::path& path, bool directory) {
    int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) {
        return io_error("cannot open '" + path.string() + "' to sync: " + std::strerror(errno));
    }
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) {
        return io_error("fsync of '" + path.string() + "' failed: " + std::strerror(errno));
    }
    return Status::ok_status();
}

}  // namespace

Status VectorIndex::save(const std::filesystem::path& path, std::uint64_t sequence) const {
    detail::Encoder header;
    faiss::VectorIOWriter blob;
    {
        std::shared_lock lock(*mutex_);
        const State& state = *state_;
        header.put_string(kSnapshotMagic);
        header.put_varint(sequence);
        header.put_string(options_.factory);
        header.put_string(metric_name(options_.metric));
        header.put_varint(options_.dimension);
        std::vector<std::uint64_t> ids = state.ids;
        if (kind_ == Kind::kIvf) {
            ids.assign(state.ivf_ids.begin(), state.ivf_ids.end());
        }
        header.put_varint(ids.size());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            header.put_varint(ids[i]);
            header.put_varint(kind_ == Kind::kIvf ? 0 : state.dead[i]);
        }
        try {
            faiss::write_index(state.index.get(), &blob);
        } catch (const std::exception& e) {
            return internal_error("serializing faiss index: " + std::string(e.what()));
        }
    }
    std::filesystem::path temp = path;
    temp += ".tmp";
    {
        std::ofstream out(temp, std::ios::binary | std::ios::trunc);
        const std::string& head = header.bytes();
        std::uint64_t head_size = head.size();
        out.write(reinterpret_cast<const char*>(&head_size), sizeof(head_size));
        out.write(head.data(), static_cast<std::streamsize>(head.size()));
        out.write(reinterpret_cast<const char*>(blob.data.data()),
                  static_cast<std::streamsize>(blob.data.size()));
        out.flush();
        if (!out) {
            return io_error("writing vector snapshot '" + temp.string() + "' failed");
        }
    }
    SLUICE_RETURN_IF_ERROR(fsync_path(temp, false));
    std::error_code ec;
    std::filesystem::rename(temp, path, ec);
    if (ec) {
        return io_error("renaming '" + temp.string() + "' to '" + path.string() +
                        "': " + ec.message());
    }
    return fsync_path(path.parent_path(), true);
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::load(const std::filesystem::path& path,
                                                       const VectorIndexOptions& options,
                                                       std::uint64_t& sequence) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return not_found("no vector snapshot at '" + path.string() + "'");
    }
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto corrupt = [&](const std::string& why) {
        return data_loss("vector snapshot '" + path.string() + "' is corrupt: " + why);
    };
    std::uint64_t head_size = 0;
    if (bytes.size() < sizeof(head_size)) {
        return corrupt("shorter than its header");
    }
    std::memcpy(&head_size, bytes.data(), sizeof(head_size));
    if (head_size > bytes.size() - sizeof(head_size)) {
        return corrupt("header of " + std::to_string(head_size) + " bytes past the end");
    }
    detail::Decoder head(std::string_view(bytes).substr(sizeof(head_size), head_size));
    std::string magic;
    std::string factory;
    std::string metric;
    std::uint64_t dimension = 0;
    std::uint64_t count = 0;
    if (!head.get_string(magic) || magic != kSnapshotMagic || !head.get_varint(sequence) ||
        !head.get_string(factory) || !head.get_string(metric) || !head.get_varint(dimension) ||
        !head.get_varint(count)) {
        return corrupt("bad header");
    }
    if (factory != options.factory || metric != metric_name(options.metric) ||
        dimension != options.dimension) {
        return failed_precondition("vector snapshot '" + path.string() + "' holds " + factory +
                                   "/" + metric + "/" + std::to_string(dimension) +
                                   ", the index is " + options.factory + "/" +
                                   std::string(metric_name(options.metric)) + "/" +
                                   std::to_string(options.dimension));
    }
    SLUICE_ASSIGN_OR_RETURN(auto index, create(options));
    State& state = *index->state_;
    faiss::VectorIOReader reader;
    reader.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(sizeof(head_size) + head_size),
                       bytes.end());
    try {
        state.index.reset(faiss::read_index(&reader));
    } catch (const std::exception& e) {
        return corrupt(std::string("faiss: ") + e.what());
    }
    detail::set_faiss_ef_search(*state.index, index->ef_search_.load());
    if (state.index->d != static_cast<faiss::Index::idx_t>(options.dimension)) {
        return corrupt("faiss index has dimension " + std::to_string(state.index->d));
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t id = 0;
        std::uint64_t dead = 0;
        if (!head.get_varint(id) || !head.get_varint(dead)) {
            return corrupt("id table truncated");
        }
        if (index->kind_ == Kind::kIvf) {
            state.ivf_ids.insert(id);
            continue;
        }
        if (dead == 0) {
            state.position[id] = static_cast<std::int64_t>(state.ids.size());
        }
        state.ids.push_back(id);
        state.dead.push_back(static_cast<std::uint8_t>(dead != 0));
        state.dead_count += dead != 0 ? 1 : 0;
    }
    if (index->kind_ != Kind::kIvf &&
        state.ids.size() != static_cast<std::size_t>(state.index->ntotal)) {
        return corrupt("id table of " + std::to_string(state.ids.size()) + " for " +
                       std::to_string(state.index->ntotal) + " vectors");
    }
    return index;
}

}  // namespace sluice::retrieval
