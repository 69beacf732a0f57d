#include "inference/detail/host_collectives.h"

#include <algorithm>
#include <string>

namespace sluice::inference::detail {

const char* collective_op_name(CollectiveOp op) {
    switch (op) {
        case CollectiveOp::kAllReduce:
            return "all_reduce";
        case CollectiveOp::kAllGather:
            return "all_gather";
        case CollectiveOp::kReduceScatter:
            return "reduce_scatter";
        case CollectiveOp::kAllToAll:
            return "all_to_all";
        case CollectiveOp::kBroadcast:
            return "broadcast";
        case CollectiveOp::kBarrier:
            return "barrier";
        case CollectiveOp::kSplit:
            return "split";
    }
    return "?";
}

bool reducible(DType dtype) {
    return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

float load_element(DType dtype, const void* data, int64_t i) {
    switch (dtype) {
        case DType::kBF16:
            return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
        case DType::kF16:
            return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
        default:
            return static_cast<const float*>(data)[i];
    }
}

void store_element(DType dtype, void* data, int64_t i, float value) {
    switch (dtype) {
        case DType::kBF16:
            static_cast<uint16_t*>(data)[i] = f32_to_bf16(value);
            return;
        case DType::kF16:
            static_cast<uint16_t*>(data)[i] = f32_to_f16(value);
            return;
        default:
            static_cast<float*>(data)[i] = value;
            return;
    }
}

float combine(ReduceOp op, float a, float b) {
    return op == ReduceOp::kSum ? a + b : std::max(a, b);
}

Status check_count(CollectiveOp op, int64_t count) {
    if (count < 0) {
        return invalid_argument(std::string(collective_op_name(op)) + ": count " +
                                std::to_string(count) + " is negative");
    }
    return Status::ok_status();
}

Status check_reduction(CollectiveOp op, int64_t count, DType dtype) {
    SLUICE_RETURN_IF_ERROR(check_count(op, count));
    if (!reducible(dtype)) {
        return invalid_argument(std::string(collective_op_name(op)) + ": element type " +
                                std::string(dtype_name(dtype)) +
                                " cannot be reduced, expected F32, BF16 or F16");
    }
    return Status::ok_status();
}

Status check_count_lists(std::span<const int64_t> send_counts, std::span<const int64_t> recv_counts,
                         int size) {
    if (std::ssize(send_counts) != size || std::ssize(recv_counts) != size) {
        return invalid_argument("all_to_all: count lists of " + std::to_string(send_counts.size()) +
                                " and " + std::to_string(recv_counts.size()) +
                                " entries, expected " + std::to_string(size));
    }
    for (int r = 0; r < size; ++r) {
        SLUICE_RETURN_IF_ERROR(
            check_count(CollectiveOp::kAllToAll, send_counts[static_cast<size_t>(r)]));
        SLUICE_RETURN_IF_ERROR(
            check_count(CollectiveOp::kAllToAll, recv_counts[static_cast<size_t>(r)]));
    }
    return Status::ok_status();
}

Status check_agreement(int rank, const CollectiveCall& mine,
                       std::span<const CollectiveCall> calls) {
    const auto size = static_cast<int>(calls.size());
    for (int r = 0; r < size; ++r) {
        const CollectiveCall& theirs = calls[static_cast<size_t>(r)];
        const bool same = theirs.op == mine.op && theirs.count == mine.count &&
                          theirs.dtype == mine.dtype && theirs.reduce == mine.reduce &&
                          theirs.root == mine.root;
        if (!same) {
            return invalid_argument(std::string(collective_op_name(mine.op)) + " on rank " +
                                    std::to_string(rank) + ": rank " + std::to_string(r) +
                                    " called " + collective_op_name(theirs.op) + " with count " +
                                    std::to_string(theirs.count) + ", type " +
                                    std::string(dtype_name(theirs.dtype)) + " or root " +
                                    std::to_string(theirs.root) + " that differ");
        }
    }
    if (mine.op != CollectiveOp::kAllToAll) {
        return Status::ok_status();
    }
    for (int from = 0; from < size; ++from) {
        for (int to = 0; to < size; ++to) {
            const int64_t sent =
                calls[static_cast<size_t>(from)].send_counts[static_cast<size_t>(to)];
            const int64_t expected =
                calls[static_cast<size_t>(to)].recv_counts[static_cast<size_t>(from)];
            if (sent != expected) {
                return invalid_argument("all_to_all: rank " + std::to_string(from) + " sends " +
                                        std::to_string(sent) + " elements to rank " +
                                        std::to_string(to) + ", which expects " +
                                        std::to_string(expected));
            }
        }
    }
    return Status::ok_status();
}

}  // namespace sluice::inference::detail
