// The TCP communicator, its nodes run as threads (and one child process) of this process on
// loopback: every collective in 2 nodes x 2 ranks and 3 nodes x 1 rank, reductions bit-identical
// to the local communicator's, argument errors on every rank, large buffers, split into a grid's
// rows and columns, abort across nodes, a node that dies mid-collective, and the CPU DBRX forward
// of the tensor and expert plans over it.
#include "inference/tcp_communicator.h"

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <future>
#include <numeric>
#include <random>
#include <thread>

#include "inference/cpu/dbrx.h"
#include "inference/dbrx_shard.h"
#include "inference/detail/tcp_mesh.h"
#include "inference/local_communicator.h"
#include "inference/model_config.h"
#include "inference/parallel_config.h"
#include "inference/safetensors.h"
#include "inference_test_support.h"
#include "loopback_nodes.h"

namespace sluice::inference {
namespace {

using testing::free_port;

// `n_nodes` loopback addresses; node 0's port is the bootstrap's, the others' only name a host.
std::vector<std::string> loopback_nodes(int n_nodes) {
    std::vector<std::string> nodes;
    for (int node = 0; node < n_nodes; ++node) {
        nodes.push_back("127.0.0.1:" + std::to_string(free_port()));
    }
    return nodes;
}

TcpGroupOptions node_options(const std::vector<std::string>& nodes, int node, int local_ranks) {
    TcpGroupOptions options;
    options.nodes = nodes;
    options.node = node;
    options.local_ranks = local_ranks;
    options.timeout = std::chrono::milliseconds(10'000);
    return options;
}

// Every node of one group, and its ranks in global order.
struct Cluster {
    std::vector<TcpGroup> nodes;
    std::vector<Communicator*> ranks;
};

Cluster open_cluster(int n_nodes, int local_ranks) {
    const std::vector<std::string> nodes = loopback_nodes(n_nodes);
    std::vector<std::future<Result<TcpGroup>>> joins;
    for (int node = n_nodes - 1; node >= 0; --node) {  // members before the root
        joins.push_back(std::async(std::launch::async, [=] {
            return open_tcp_communicators(node_options(nodes, node, local_ranks));
        }));
    }
    Cluster cluster;
    cluster.nodes.resize(static_cast<size_t>(n_nodes));
    for (int i = 0; i < n_nodes; ++i) {
        auto group = joins[static_cast<size_t>(i)].get();
        REQUIRE_MESSAGE(group.ok(), group.status().to_string());
        cluster.nodes[static_cast<size_t>(n_nodes - 1 - i)] = std::move(*group);
    }
    for (TcpGroup& group : cluster.nodes) {
        REQUIRE(std::ssize(group.comms) == local_ranks);
        for (auto& comm : group.comms) {
            cluster.ranks.push_back(comm.get());
        }
    }
    return cluster;
}

// Runs body(comm) on one thread per rank and returns each rank's status.
std::vector<Status> run_ranks(const std::vector<Communicator*>& comms,
                              const std::function<Status(Communicator&)>& body) {
    std::vector<Status> results(comms.size());
    std::vector<std::thread> threads;
    for (size_t r = 0; r < comms.size(); ++r) {
        threads.emplace_back([&, r] { results[r] = body(*comms[r]); });
    }
    for (std::thread& t : threads) {
        t.join();
    }
    return results;
}

std::vector<Communicator*> pointers(const std::vector<std::unique_ptr<Communicator>>& comms) {
    std::vector<Communicator*> out;
    for (const auto& comm : comms) {
        out.push_back(comm.get());
    }
    return out;
}

void require_all_ok(const std::vector<Status>& results) {
    for (size_t r = 0; r < results.size(); ++r) {
        INFO("rank " << r);
        REQUIRE_MESSAGE(results[r].ok(), results[r].to_string());
    }
}

// Inputs whose sums depend on the order of addition in every type: rounding must match.
std::vector<uint8_t> random_input(DType dtype, int rank, int64_t count) {
    std::mt19937 rng(static_cast<uint32_t>(1000 + rank));
    std::uniform_real_distribution<float> dist(-3.0F, 3.0F);
    std::vector<uint8_t> bytes(static_cast<size_t>(count * dtype_size(dtype)));
    for (int64_t i = 0; i < count; ++i) {
        const float v = dist(rng) * (i % 7 == 0 ? 1000.0F : 1.0F);
        if (dtype == DType::kF32) {
            std::memcpy(bytes.data() + i * 4, &v, 4);
        } else {
            const uint16_t bits = dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
            std::memcpy(bytes.data() + i * 2, &bits, 2);
        }
    }
    return bytes;
}

// The same collective on the local communicator and on the tcp one, with the same inputs:
// `body(comm, rank, buffer)` runs it on `buffer` (each rank's input, replaced by its result).
void check_same_as_local(Cluster& cluster, std::vector<std::vector<uint8_t>> inputs,
                         const std::function<Status(Communicator&, std::vector<uint8_t>&)>& body) {
    const auto n = static_cast<int>(cluster.ranks.size());
    auto local = create_local_communicators(n);
    REQUIRE(local.ok());
    std::vector<std::vector<uint8_t>> expected = inputs;
    require_all_ok(run_ranks(pointers(*local), [&](Communicator& c) {
        return body(c, expected[static_cast<size_t>(c.rank())]);
    }));
    require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
        return body(c, inputs[static_cast<size_t>(c.rank())]);
    }));
    for (int r = 0; r < n; ++r) {
        INFO("rank " << r);
        CHECK(inputs[static_cast<size_t>(r)] == expected[static_cast<size_t>(r)]);
    }
}

const std::pair<int, int> kLayouts[] = {{2, 2}, {3, 1}};  // nodes x local ranks

}  // namespace

TEST_CASE("tcp communicator: ranks are numbered node by node") {
    Cluster cluster = open_cluster(2, 2);
    for (int r = 0; r < 4; ++r) {
        CHECK(cluster.ranks[static_cast<size_t>(r)]->rank() == r);
        CHECK(cluster.ranks[static_cast<size_t>(r)]->size() == 4);
        CHECK(cluster.ranks[static_cast<size_t>(r)]->name() == "tcp");
    }
    CHECK(cluster.nodes[1].channel->node() == 1);
    CHECK(cluster.nodes[1].channel->n_nodes() == 2);
    CHECK(cluster.nodes[0].channel->abort_reason().empty());
}

TEST_CASE("tcp communicator: nodes announce their byte order, and a node of another is refused") {
    using detail::host_byte_order;
    using detail::parse_mesh_contacts;
    const std::string mine = host_byte_order();
    CHECK((mine == "little-endian" || mine == "big-endian"));
    CHECK(detail::format_mesh_contact("::1", 7000) == "[::1]:7000 " + mine);
    auto same = parse_mesh_contacts({"10.0.0.1:5000 " + mine, "[::1]:5001 " + mine}, 1);
    REQUIRE_MESSAGE(same.ok(), same.status().to_string());
    CHECK((*same)[1].host == "::1");
    CHECK((*same)[1].port == "5001");

    const std::string other = mine == "little-endian" ? "big-endian" : "little-endian";
    auto mixed = parse_mesh_contacts({"10.0.0.1:5000 " + mine, "10.0.0.2:5000 " + other}, 0);
    REQUIRE_FALSE(mixed.ok());
    CHECK(mixed.status().code() == StatusCode::kFailedPrecondition);
    CHECK(mixed.status().message().find("node 1 is " + other + " and node 0 " + mine) !=
          std::string::npos);
    auto old_format = parse_mesh_contacts({"10.0.0.1:5000"}, 0);
    CHECK(old_format.status().code() == StatusCode::kInvalidArgument);
    CHECK(old_format.status().message().find("host:port byte-order") != std::string::npos);
}

TEST_CASE("tcp communicator: one node needs no other") {
    auto group = open_tcp_communicators(node_options({"127.0.0.1:1"}, 0, 3));
    REQUIRE_MESSAGE(group.ok(), group.status().to_string());
    std::vector<float> data(5, 1.0F);
    std::vector<std::vector<float>> out(3, data);
    require_all_ok(run_ranks(pointers(group->comms), [&](Communicator& c) {
        return c.all_reduce(out[static_cast<size_t>(c.rank())].data(), 5, DType::kF32,
                            ReduceOp::kSum);
    }));
    for (const auto& result : out) {
        CHECK(result == std::vector<float>(5, 3.0F));
    }
}

TEST_CASE("tcp communicator: reductions match the local communicator bit for bit") {
    for (const auto& [n_nodes, local_ranks] : kLayouts) {
        Cluster cluster = open_cluster(n_nodes, local_ranks);
        const int n = n_nodes * local_ranks;
        for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
            for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
                CAPTURE(n_nodes);
                CAPTURE(dtype_name(dtype));
                CAPTURE(static_cast<int>(op));
                constexpr int64_t kCount = 1001;  // not a multiple of any group size
                std::vector<std::vector<uint8_t>> inputs;
                for (int r = 0; r < n; ++r) {
                    inputs.push_back(random_input(dtype, r, kCount));
                }
                check_same_as_local(cluster, inputs, [&](Communicator& c, auto& buffer) {
                    return c.all_reduce(buffer.data(), kCount, dtype, op);
                });
                // reduce_scatter: every rank sends n blocks and keeps its own block's reduction.
                std::vector<std::vector<uint8_t>> scatter_inputs;
                for (int r = 0; r < n; ++r) {
                    scatter_inputs.push_back(random_input(dtype, r + 50, kCount * n));
                }
                check_same_as_local(cluster, scatter_inputs, [&](Communicator& c, auto& buffer) {
                    std::vector<uint8_t> out(static_cast<size_t>(kCount * dtype_size(dtype)));
                    Status status = c.reduce_scatter(buffer.data(), out.data(), kCount, dtype, op);
                    buffer = out;
                    return status;
                });
            }
        }
    }
}

TEST_CASE("tcp communicator: all_gather, all_to_all with empty blocks, broadcast from any root") {
    for (const auto& [n_nodes, local_ranks] : kLayouts) {
        CAPTURE(n_nodes);
        Cluster cluster = open_cluster(n_nodes, local_ranks);
        const int n = n_nodes * local_ranks;
        for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16, DType::kU8}) {
            CAPTURE(dtype_name(dtype));
            std::vector<std::vector<uint8_t>> inputs;
            for (int r = 0; r < n; ++r) {
                // Bytes need no conversion: any 13 of them will do.
                std::vector<uint8_t> input =
                    random_input(dtype == DType::kU8 ? DType::kF32 : dtype, r, 13);
                input.resize(static_cast<size_t>(13 * dtype_size(dtype)));
                inputs.push_back(std::move(input));
            }
            check_same_as_local(cluster, inputs, [&](Communicator& c, auto& buffer) {
                std::vector<uint8_t> out(buffer.size() * static_cast<size_t>(n));
                Status status = c.all_gather(buffer.data(), out.data(), 13, dtype);
                buffer = out;
                return status;
            });
            for (int root = 0; root < n; ++root) {
                check_same_as_local(cluster, inputs, [&](Communicator& c, auto& buffer) {
                    return c.broadcast(buffer.data(), 13, dtype, root);
                });
            }
        }
        // Rank r sends (r + p) % 3 elements to rank p: some blocks, the rank's own included,
        // are empty.
        auto sends = [](int from, int to) { return static_cast<int64_t>((from + to) % 3); };
        std::vector<std::vector<uint8_t>> inputs;
        for (int r = 0; r < n; ++r) {
            inputs.push_back(random_input(DType::kF32, r, 3 * n));
        }
        check_same_as_local(cluster, inputs, [&](Communicator& c, auto& buffer) {
            std::vector<int64_t> send_counts;
            std::vector<int64_t> recv_counts;
            int64_t total = 0;
            for (int p = 0; p < n; ++p) {
                send_counts.push_back(sends(c.rank(), p));
                recv_counts.push_back(sends(p, c.rank()));
                total += recv_counts.back();
            }
            std::vector<uint8_t> out(static_cast<size_t>(total) * 4 + 4);
            Status status =
                c.all_to_all(buffer.data(), send_counts, out.data(), recv_counts, DType::kF32);
            buffer = out;
            return status;
        });
        // And the values themselves: rank r's block from p is p's elements at its offset for r.
        std::vector<std::vector<float>> got(static_cast<size_t>(n));
        require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
            std::vector<float> send;
            std::vector<int64_t> send_counts;
            std::vector<int64_t> recv_counts;
            for (int p = 0; p < n; ++p) {
                for (int64_t i = 0; i < sends(c.rank(), p); ++i) {
                    send.push_back(static_cast<float>(c.rank() * 100 + p * 10 + i));
                }
                send_counts.push_back(sends(c.rank(), p));
                recv_counts.push_back(sends(p, c.rank()));
            }
            std::vector<float>& out = got[static_cast<size_t>(c.rank())];
            out.resize(static_cast<size_t>(
                std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0})));
            return c.all_to_all(send.data(), send_counts, out.data(), recv_counts, DType::kF32);
        }));
        for (int r = 0; r < n; ++r) {
            std::vector<float> expected;
            for (int p = 0; p < n; ++p) {
                for (int64_t i = 0; i < sends(p, r); ++i) {
                    expected.push_back(static_cast<float>(p * 100 + r * 10 + i));
                }
            }
            CHECK(got[static_cast<size_t>(r)] == expected);
        }
    }
}

TEST_CASE("tcp communicator: buffers of 8 MB and more pass without a deadlock") {
    Cluster cluster = open_cluster(2, 2);
    constexpr int64_t kCount = 2 << 20;  // 8 MB of f32 per rank
    std::vector<std::vector<float>> reduced(4);
    std::vector<std::vector<float>> gathered(4);
    std::vector<std::vector<float>> exchanged(4);
    require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
        const auto r = static_cast<size_t>(c.rank());
        std::vector<float>& data = reduced[r];
        data.resize(kCount);
        for (int64_t i = 0; i < kCount; ++i) {
            data[static_cast<size_t>(i)] = static_cast<float>((i % 1024) + c.rank());
        }
        SLUICE_RETURN_IF_ERROR(c.all_reduce(data.data(), kCount, DType::kF32, ReduceOp::kSum));
        gathered[r].resize(static_cast<size_t>(kCount) * 4);
        SLUICE_RETURN_IF_ERROR(c.all_gather(data.data(), gathered[r].data(), kCount, DType::kF32));
        // Every rank sends a quarter of its 8 MB to every rank.
        const std::vector<int64_t> counts(4, kCount / 4);
        exchanged[r].resize(kCount);
        return c.all_to_all(data.data(), counts, exchanged[r].data(), counts, DType::kF32);
    }));
    for (size_t r = 0; r < 4; ++r) {
        INFO("rank " << r);
        bool all_right = true;
        for (int64_t i = 0; i < kCount && all_right; ++i) {
            all_right =
                reduced[r][static_cast<size_t>(i)] == static_cast<float>(4 * (i % 1024) + 6);
        }
        CHECK(all_right);
        CHECK(std::equal(gathered[r].begin(), gathered[r].begin() + kCount, reduced[0].begin()));
        CHECK(std::equal(gathered[r].begin() + 3 * kCount, gathered[r].end(), reduced[3].begin()));
        // Block p of what rank r received is block r of rank p's data (the same on every rank).
        bool exchanged_right = true;
        for (int64_t p = 0; p < 4 && exchanged_right; ++p) {
            exchanged_right = std::equal(
                exchanged[r].begin() + p * (kCount / 4),
                exchanged[r].begin() + (p + 1) * (kCount / 4),
                reduced[static_cast<size_t>(p)].begin() + static_cast<int64_t>(r) * (kCount / 4));
        }
        CHECK(exchanged_right);
    }
}

TEST_CASE("tcp communicator: arguments that disagree fail on every rank, and the group goes on") {
    for (const auto& [n_nodes, local_ranks] : kLayouts) {
        CAPTURE(n_nodes);
        Cluster cluster = open_cluster(n_nodes, local_ranks);
        const int n = n_nodes * local_ranks;
        std::vector<float> data(64, 1.0F);
        auto every_rank_invalid = [&](const std::function<Status(Communicator&)>& body) {
            const std::vector<Status> results = run_ranks(cluster.ranks, body);
            for (size_t r = 0; r < results.size(); ++r) {
                INFO("rank " << r << ": " << results[r].to_string());
                CHECK(results[r].code() == StatusCode::kInvalidArgument);
            }
        };
        every_rank_invalid([&](Communicator& c) {
            std::vector<float> mine = data;
            return c.all_reduce(mine.data(), c.rank() == n - 1 ? 32 : 64, DType::kF32,
                                ReduceOp::kSum);
        });
        every_rank_invalid([&](Communicator& c) {
            std::vector<float> mine = data;
            return c.broadcast(mine.data(), 64, DType::kF32, c.rank() == 0 ? 1 : 0);
        });
        every_rank_invalid([&](Communicator& c) {
            std::vector<float> mine = data;
            std::vector<float> out(64 * static_cast<size_t>(n));
            if (c.rank() == 1) {
                return c.broadcast(mine.data(), 64, DType::kF32, 0);
            }
            return c.all_gather(mine.data(), out.data(), 64, DType::kF32);
        });
        every_rank_invalid([&](Communicator& c) {
            // Rank 0 expects 2 elements from rank 1, which sends 1.
            std::vector<int64_t> send_counts(static_cast<size_t>(n), 1);
            std::vector<int64_t> recv_counts(static_cast<size_t>(n), 1);
            if (c.rank() == 0) {
                recv_counts[1] = 2;
            }
            std::vector<float> out(static_cast<size_t>(n) + 1);
            return c.all_to_all(data.data(), send_counts, out.data(), recv_counts, DType::kF32);
        });
        // Checked on the rank alone, as the local communicator does, before any byte is sent.
        CHECK(cluster.ranks[0]->all_reduce(data.data(), -1, DType::kF32, ReduceOp::kSum).code() ==
              StatusCode::kInvalidArgument);
        CHECK(cluster.ranks[0]->all_reduce(data.data(), 4, DType::kU8, ReduceOp::kSum).code() ==
              StatusCode::kInvalidArgument);
        CHECK(cluster.ranks[0]->broadcast(data.data(), 4, DType::kF32, n).code() ==
              StatusCode::kInvalidArgument);
        // The streams stayed in step.
        std::vector<std::vector<float>> out(static_cast<size_t>(n), data);
        require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
            SLUICE_RETURN_IF_ERROR(c.barrier());
            return c.all_reduce(out[static_cast<size_t>(c.rank())].data(), 64, DType::kF32,
                                ReduceOp::kSum);
        }));
        for (const auto& result : out) {
            CHECK(result == std::vector<float>(64, static_cast<float>(n)));
        }
    }
}

TEST_CASE("tcp communicator: split into a grid's rows and columns, collectives on both") {
    Cluster cluster = open_cluster(2, 2);
    std::vector<float> rows(4);
    std::vector<float> columns(4);
    std::vector<std::pair<int, int>> shapes(4);
    std::vector<Status> negative(4);
    std::vector<int> negative_sizes(4, 0);
    require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
        const auto r = static_cast<size_t>(c.rank());
        // Rows {0, 1} and {2, 3}, numbered by descending rank; columns {0, 2} and {1, 3}.
        SLUICE_ASSIGN_OR_RETURN(auto row, c.split(c.rank() / 2, -c.rank()));
        SLUICE_ASSIGN_OR_RETURN(auto column, c.split(c.rank() % 2, c.rank()));
        shapes[r] = {row->rank(), column->rank()};
        float in_row = static_cast<float>(c.rank() + 1);
        float in_column = static_cast<float>(10 * (c.rank() + 1));
        // Alternate between the groups: they share the parent's connections.
        for (int round = 0; round < 3; ++round) {
            SLUICE_RETURN_IF_ERROR(row->barrier());
            SLUICE_RETURN_IF_ERROR(column->barrier());
        }
        SLUICE_RETURN_IF_ERROR(row->all_reduce(&in_row, 1, DType::kF32, ReduceOp::kSum));
        SLUICE_RETURN_IF_ERROR(column->all_reduce(&in_column, 1, DType::kF32, ReduceOp::kMax));
        rows[r] = in_row;
        columns[r] = in_column;
        // A negative color leaves that rank out; the others still get their group.
        auto maybe = c.split(c.rank() == 3 ? -1 : 0, 0);
        negative[r] = maybe.status();
        if (maybe.ok()) {
            negative_sizes[r] = (*maybe)->size();
            SLUICE_RETURN_IF_ERROR((*maybe)->barrier());
        }
        return c.barrier();
    }));
    CHECK(rows == std::vector<float>{3, 3, 7, 7});
    CHECK(columns == std::vector<float>{30, 40, 30, 40});
    CHECK(shapes == std::vector<std::pair<int, int>>{{1, 0}, {0, 0}, {1, 1}, {0, 1}});
    CHECK(negative_sizes == std::vector<int>{3, 3, 3, 0});
    CHECK(negative[0].ok());
    CHECK(negative[3].code() == StatusCode::kInvalidArgument);
}

TEST_CASE("tcp communicator: an abort on one node wakes ranks waiting on another") {
    for (const bool from_sub_group : {false, true}) {
        CAPTURE(from_sub_group);
        Cluster cluster = open_cluster(2, 2);
        std::vector<std::unique_ptr<Communicator>> columns(4);
        require_all_ok(run_ranks(cluster.ranks, [&](Communicator& c) {
            SLUICE_ASSIGN_OR_RETURN(columns[static_cast<size_t>(c.rank())],
                                    c.split(c.rank() % 2, c.rank()));
            return Status::ok_status();
        }));
        const std::vector<Status> results = run_ranks(cluster.ranks, [&](Communicator& c) {
            if (c.rank() == 3) {
                // Node 1's rank 3 stops while the others wait in a collective of the whole group.
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                Communicator& who = from_sub_group ? *columns[3] : c;
                who.abort("out of memory");
                return Status::ok_status();
            }
            float value = 1.0F;
            return c.all_reduce(&value, 1, DType::kF32, ReduceOp::kSum);
        });
        for (int r = 0; r < 3; ++r) {
            INFO("rank " << r << ": " << results[static_cast<size_t>(r)].to_string());
            CHECK(results[static_cast<size_t>(r)].code() == StatusCode::kAborted);
            CHECK(results[static_cast<size_t>(r)].message() ==
                  "node 1: rank 3 aborted: out of memory");
        }
        // Later calls, on any group of the family, fail the same way.
        CHECK(cluster.ranks[1]->barrier().code() == StatusCode::kAborted);
        CHECK(columns[0]->barrier().message() == "node 1: rank 3 aborted: out of memory");
        CHECK(cluster.nodes[0].channel->abort_reason() == "node 1: rank 3 aborted: out of memory");
    }
}

TEST_CASE("tcp communicator: a node whose process dies mid-collective aborts the others") {
    const std::vector<std::string> nodes = loopback_nodes(3);
    // Node 1 is a child process that joins, takes part in one barrier, and dies without a word
    // (_exit) while the others wait in an all_reduce; the kernel closes its sockets.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto group = open_tcp_communicators(node_options(nodes, 1, 1));
        if (!group.ok() || !group->comms[0]->barrier().ok()) {
            ::_exit(1);
        }
        ::_exit(0);
    }
    auto member = std::async(std::launch::async,
                             [&] { return open_tcp_communicators(node_options(nodes, 2, 1)); });
    auto root = open_tcp_communicators(node_options(nodes, 0, 1));
    auto other = member.get();
    REQUIRE_MESSAGE(root.ok(), root.status().to_string());
    REQUIRE_MESSAGE(other.ok(), other.status().to_string());
    const std::vector<Status> results =
        run_ranks({root->comms[0].get(), other->comms[0].get()}, [&](Communicator& c) {
            SLUICE_RETURN_IF_ERROR(c.barrier());
            std::vector<float> data(1 << 16, 1.0F);
            return c.all_reduce(data.data(), 1 << 16, DType::kF32, ReduceOp::kSum);
        });
    int child_status = 0;
    REQUIRE(::waitpid(child, &child_status, 0) == child);
    CHECK(WIFEXITED(child_status));
    CHECK(WEXITSTATUS(child_status) == 0);
    for (const Status& result : results) {
        INFO(result.to_string());
        CHECK(result.code() == StatusCode::kAborted);
        // Whichever the node noticed first: the control channel or the rank's connection.
        const bool named = result.message().find("node 1 is gone") != std::string::npos ||
                           result.message().find("rank 1: connection") != std::string::npos;
        CHECK(named);
    }
    CHECK(results[0].message() == results[1].message());  // one first reason for the group
}

TEST_CASE("tcp communicator: bad options name the problem") {
    TcpGroupOptions options;
    CHECK(open_tcp_communicators(options).status().message().find("no nodes") != std::string::npos);
    options.nodes = {"127.0.0.1:1", "127.0.0.1:2"};
    options.node = 2;
    CHECK(open_tcp_communicators(options).status().message().find("node 2 outside [0, 2)") !=
          std::string::npos);
    options.node = 0;
    options.local_ranks = 0;
    CHECK(open_tcp_communicators(options).status().code() == StatusCode::kInvalidArgument);
    options.local_ranks = 1;
    options.nodes[1] = "no-port";
    CHECK(open_tcp_communicators(options).status().message().find("`no-port` is not host:port") !=
          std::string::npos);
}

// One step of the tiny model (5 tokens, logits of every position) on `model`, with its own cache.
Result<std::vector<float>> forward_tiny(cpu::DbrxModel& model) {
    cpu::KvCacheStorage cache;
    SLUICE_RETURN_IF_ERROR(
        cache.configure(KvCacheSpec{4, 4}, model.config().n_layer, model.n_embd_kv()));
    const std::vector<int32_t> tokens = {17, 4000, 99, 60000, 5};
    const std::vector<int32_t> blocks = {0, 1};
    ForwardBatch batch;
    batch.sequences.push_back({tokens, 0, blocks, LogitsRows::kAll, false});
    ForwardOutput out;
    SLUICE_RETURN_IF_ERROR(model.forward(batch, &cache, &out));
    return out.logits;
}

TEST_CASE("tcp communicator: the CPU DBRX forward of the tensor and expert plans runs over it") {
    const std::string& dir = testing::tiny_model_dir(3);
    auto config = load_model_config(dir);
    auto checkpoint = Checkpoint::open(dir);
    REQUIRE((config.ok() && checkpoint.ok()));
    for (const bool expert_plan : {false, true}) {
        CAPTURE(expert_plan);
        ParallelConfig parallel;
        (expert_plan ? parallel.expert : parallel.tensor) = 2;
        // Each rank's logits over `comms`: over the local communicator and over the tcp one,
        // the same reductions in the same order, so the same bits.
        auto run_plan = [&](const std::vector<Communicator*>& comms) {
            std::vector<std::unique_ptr<cpu::DbrxModel>> models;
            for (int r = 0; r < 2; ++r) {
                auto shard = shard_for_rank(*config, parallel, r);
                REQUIRE(shard.ok());
                Communicator* comm = comms[static_cast<size_t>(r)];
                const cpu::RankComms rank_comms = expert_plan ? cpu::RankComms{comm, nullptr, comm}
                                                              : cpu::RankComms{comm, comm, nullptr};
                models.push_back(std::make_unique<cpu::DbrxModel>(
                    *config,
                    cpu::load_dbrx_weights(*config, **checkpoint, WeightFormat::kF32, *shard), 1,
                    *shard, rank_comms));
            }
            std::vector<std::vector<float>> logits(2);
            require_all_ok(run_ranks(comms, [&](Communicator& c) {
                const auto r = static_cast<size_t>(c.rank());
                SLUICE_ASSIGN_OR_RETURN(logits[r], forward_tiny(*models[r]));
                return Status::ok_status();
            }));
            return logits;
        };
        auto local = create_local_communicators(2);
        REQUIRE(local.ok());
        const std::vector<std::vector<float>> expected = run_plan(pointers(*local));
        Cluster cluster = open_cluster(2, 1);
        const std::vector<std::vector<float>> got = run_plan(cluster.ranks);
        REQUIRE(got[0].size() == static_cast<size_t>(5 * config->n_vocab));
        CHECK(got[0] == got[1]);  // every rank ends with the full logits
        CHECK(got[0] == expected[0]);
        CHECK(got[1] == expected[1]);
    }
}

}  // namespace sluice::inference
