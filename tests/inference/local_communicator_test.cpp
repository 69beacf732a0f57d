// The local communicator: every collective with 1 to 4 ranks (threads), reductions in the three
// float types, determinism across ranks, argument errors, abort waking ranks that wait, and
// split into the rows and columns of a grid, whose groups fail together.
#include "inference/local_communicator.h"

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

namespace sluice::inference {
namespace {

using Comms = std::vector<std::unique_ptr<Communicator>>;

Comms make_group(int n) {
    auto comms = create_local_communicators(n);
    REQUIRE_MESSAGE(comms.ok(), comms.status().to_string());
    return std::move(*comms);
}

// Runs body(comm) on one thread per rank and returns each rank's status.
std::vector<Status> run_ranks(Comms& comms, const std::function<Status(Communicator&)>& body) {
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

void require_all_ok(const std::vector<Status>& results) {
    for (size_t r = 0; r < results.size(); ++r) {
        INFO("rank " << r);
        REQUIRE_MESSAGE(results[r].ok(), results[r].to_string());
    }
}

// A value that depends on rank and index and is exact in bf16 and f16 (small integers / 4).
float value(int rank, int64_t i) { return static_cast<float>((rank * 7 + i * 3) % 23 - 11) / 4; }

std::vector<uint16_t> encode(DType dtype, const std::vector<float>& values) {
    std::vector<uint16_t> out;
    for (float v : values) {
        out.push_back(dtype == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v));
    }
    return out;
}

float decode(DType dtype, uint16_t bits) {
    return dtype == DType::kBF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
}

TEST_CASE("local communicator: a group needs at least one rank") {
    CHECK(create_local_communicators(0).status().code() == StatusCode::kInvalidArgument);
    Comms comms = make_group(3);
    for (int r = 0; r < 3; ++r) {
        CHECK(comms[static_cast<size_t>(r)]->rank() == r);
        CHECK(comms[static_cast<size_t>(r)]->size() == 3);
        CHECK(comms[static_cast<size_t>(r)]->name() == "local");
    }
}

TEST_CASE("local communicator: all_reduce sums and maxes in f32, bf16 and f16") {
    for (int n : {1, 2, 3, 4}) {
        for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
            for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMax}) {
                CAPTURE(n);
                CAPTURE(static_cast<int>(dtype));
                CAPTURE(static_cast<int>(op));
                constexpr int64_t kCount = 37;  // not a multiple of any group size
                Comms comms = make_group(n);
                std::vector<std::vector<float>> out(static_cast<size_t>(n));
                require_all_ok(run_ranks(comms, [&](Communicator& c) {
                    std::vector<float> mine(kCount);
                    for (int64_t i = 0; i < kCount; ++i) {
                        mine[static_cast<size_t>(i)] = value(c.rank(), i);
                    }
                    Status s;
                    if (dtype == DType::kF32) {
                        s = c.all_reduce(mine.data(), kCount, dtype, op);
                    } else {
                        std::vector<uint16_t> bits = encode(dtype, mine);
                        s = c.all_reduce(bits.data(), kCount, dtype, op);
                        for (int64_t i = 0; i < kCount; ++i) {
                            mine[static_cast<size_t>(i)] = decode(dtype, bits[static_cast<size_t>(i)]);
                        }
                    }
                    out[static_cast<size_t>(c.rank())] = mine;
                    return s;
                }));
                for (int64_t i = 0; i < kCount; ++i) {
                    float expected = value(0, i);
                    for (int r = 1; r < n; ++r) {
                        expected = op == ReduceOp::kSum ? expected + value(r, i)
                                                        : std::max(expected, value(r, i));
                    }
                    for (int r = 0; r < n; ++r) {
                        CHECK(out[static_cast<size_t>(r)][static_cast<size_t>(i)] == expected);
                    }
                }
            }
        }
    }
}

TEST_CASE("local communicator: reductions of inexact values are bit-identical on every rank") {
    Comms comms = make_group(4);
    constexpr int64_t kCount = 1000;
    std::vector<std::vector<float>> out(4);
    for (int round = 0; round < 5; ++round) {
        require_all_ok(run_ranks(comms, [&](Communicator& c) {
            std::vector<float> mine(kCount);
            for (int64_t i = 0; i < kCount; ++i) {
                mine[static_cast<size_t>(i)] = 1.0f / static_cast<float>(3 + i + 7 * c.rank());
            }
            Status s = c.all_reduce(mine.data(), kCount, DType::kF32, ReduceOp::kSum);
            if (round == 0) {
                out[static_cast<size_t>(c.rank())] = mine;
            } else if (mine != out[static_cast<size_t>(c.rank())]) {
                return internal_error("round " + std::to_string(round) + " differs");
            }
            return s;
        }));
    }
    for (size_t r = 1; r < 4; ++r) {
        CHECK(out[r] == out[0]);
    }
    // The rank-order sum, as the contract states.
    float expected = 0;
    for (int r = 0; r < 4; ++r) {
        expected = r == 0 ? 1.0f / 3 : expected + 1.0f / static_cast<float>(3 + 7 * r);
    }
    CHECK(out[0][0] == expected);
}

TEST_CASE("local communicator: all_gather places each rank's block at its rank") {
    for (int n : {1, 2, 3, 4}) {
        CAPTURE(n);
        Comms comms = make_group(n);
        constexpr int64_t kCount = 5;
        std::vector<std::vector<float>> out(static_cast<size_t>(n));
        require_all_ok(run_ranks(comms, [&](Communicator& c) {
            std::vector<float> mine(kCount);
            for (int64_t i = 0; i < kCount; ++i) {
                mine[static_cast<size_t>(i)] = value(c.rank(), i);
            }
            std::vector<float>& recv = out[static_cast<size_t>(c.rank())];
            recv.assign(static_cast<size_t>(n * kCount), -100);
            return c.all_gather(mine.data(), recv.data(), kCount, DType::kF32);
        }));
        for (int r = 0; r < n; ++r) {
            for (int from = 0; from < n; ++from) {
                for (int64_t i = 0; i < kCount; ++i) {
                    CHECK(out[static_cast<size_t>(r)][static_cast<size_t>(from * kCount + i)] ==
                          value(from, i));
                }
            }
        }
    }
}

TEST_CASE("local communicator: all_gather moves any element type, here bf16 bits") {
    Comms comms = make_group(3);
    std::vector<std::vector<uint16_t>> out(3);
    require_all_ok(run_ranks(comms, [&](Communicator& c) {
        std::vector<uint16_t> mine = {static_cast<uint16_t>(c.rank() * 1000 + 1),
                                      static_cast<uint16_t>(c.rank() * 1000 + 2)};
        out[static_cast<size_t>(c.rank())].resize(6);
        return c.all_gather(mine.data(), out[static_cast<size_t>(c.rank())].data(), 2,
                            DType::kBF16);
    }));
    for (const auto& recv : out) {
        CHECK(recv == std::vector<uint16_t>{1, 2, 1001, 1002, 2001, 2002});
    }
}

TEST_CASE("local communicator: reduce_scatter gives rank r the reduction of block r") {
    for (int n : {1, 2, 3, 4}) {
        for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
            CAPTURE(n);
            CAPTURE(static_cast<int>(dtype));
            Comms comms = make_group(n);
            constexpr int64_t kCount = 6;
            std::vector<std::vector<float>> out(static_cast<size_t>(n));
            require_all_ok(run_ranks(comms, [&](Communicator& c) {
                std::vector<float> send(static_cast<size_t>(n * kCount));
                for (int64_t i = 0; i < n * kCount; ++i) {
                    send[static_cast<size_t>(i)] = value(c.rank(), i);
                }
                std::vector<float>& recv = out[static_cast<size_t>(c.rank())];
                recv.assign(kCount, 0);
                if (dtype == DType::kF32) {
                    return c.reduce_scatter(send.data(), recv.data(), kCount, dtype,
                                            ReduceOp::kSum);
                }
                std::vector<uint16_t> bits = encode(dtype, send);
                std::vector<uint16_t> recv_bits(kCount);
                Status s = c.reduce_scatter(bits.data(), recv_bits.data(), kCount, dtype,
                                            ReduceOp::kSum);
                for (int64_t i = 0; i < kCount; ++i) {
                    recv[static_cast<size_t>(i)] = decode(dtype, recv_bits[static_cast<size_t>(i)]);
                }
                return s;
            }));
            for (int r = 0; r < n; ++r) {
                for (int64_t i = 0; i < kCount; ++i) {
                    float expected = 0;
                    for (int from = 0; from < n; ++from) {
                        expected += value(from, r * kCount + i);
                    }
                    CHECK(out[static_cast<size_t>(r)][static_cast<size_t>(i)] == expected);
                }
            }
        }
    }
}

TEST_CASE("local communicator: all_to_all with uneven and empty counts") {
    for (int n : {1, 2, 3, 4}) {
        CAPTURE(n);
        Comms comms = make_group(n);
        // Rank `from` sends (from + to) % 3 elements to rank `to`, valued 100*from + 10*to + i.
        auto n_sent = [](int from, int to) { return static_cast<int64_t>((from + to) % 3); };
        std::vector<std::vector<float>> out(static_cast<size_t>(n));
        require_all_ok(run_ranks(comms, [&](Communicator& c) {
            std::vector<int64_t> send_counts;
            std::vector<int64_t> recv_counts;
            std::vector<float> send;
            for (int to = 0; to < n; ++to) {
                send_counts.push_back(n_sent(c.rank(), to));
                recv_counts.push_back(n_sent(to, c.rank()));
                for (int64_t i = 0; i < n_sent(c.rank(), to); ++i) {
                    send.push_back(static_cast<float>(100 * c.rank() + 10 * to + i));
                }
            }
            std::vector<float>& recv = out[static_cast<size_t>(c.rank())];
            int64_t total = 0;
            for (int64_t count : recv_counts) {
                total += count;
            }
            recv.assign(static_cast<size_t>(total), -1);
            return c.all_to_all(send.data(), send_counts, recv.data(), recv_counts, DType::kF32);
        }));
        for (int r = 0; r < n; ++r) {
            std::vector<float> expected;
            for (int from = 0; from < n; ++from) {
                for (int64_t i = 0; i < n_sent(from, r); ++i) {
                    expected.push_back(static_cast<float>(100 * from + 10 * r + i));
                }
            }
            CHECK(out[static_cast<size_t>(r)] == expected);
        }
    }
}

TEST_CASE("local communicator: all_to_all counts that do not pair up fail on every rank") {
    Comms comms = make_group(2);
    const auto results = run_ranks(comms, [&](Communicator& c) {
        std::vector<float> send(4, 1);
        std::vector<float> recv(4, 0);
        const std::vector<int64_t> send_counts = {1, 1};
        // Rank 1 expects 2 elements from rank 0, which sends it 1.
        const std::vector<int64_t> recv_counts =
            c.rank() == 1 ? std::vector<int64_t>{2, 1} : std::vector<int64_t>{1, 1};
        return c.all_to_all(send.data(), send_counts, recv.data(), recv_counts, DType::kF32);
    });
    for (const Status& s : results) {
        CHECK(s.code() == StatusCode::kInvalidArgument);
        CHECK(s.message().find("rank 0 sends 1 elements to rank 1, which expects 2") !=
              std::string::npos);
    }
}

TEST_CASE("local communicator: broadcast copies the root's data to every rank") {
    for (int n : {1, 2, 3, 4}) {
        for (int root = 0; root < n; ++root) {
            CAPTURE(n);
            CAPTURE(root);
            Comms comms = make_group(n);
            std::vector<std::vector<float>> out(static_cast<size_t>(n));
            require_all_ok(run_ranks(comms, [&](Communicator& c) {
                std::vector<float>& data = out[static_cast<size_t>(c.rank())];
                data = {value(c.rank(), 0), value(c.rank(), 1), value(c.rank(), 2)};
                return c.broadcast(data.data(), 3, DType::kF32, root);
            }));
            for (int r = 0; r < n; ++r) {
                CHECK(out[static_cast<size_t>(r)] ==
                      std::vector<float>{value(root, 0), value(root, 1), value(root, 2)});
            }
        }
    }
}

TEST_CASE("local communicator: barrier holds every rank until all arrive") {
    for (int n : {1, 2, 3, 4}) {
        CAPTURE(n);
        Comms comms = make_group(n);
        std::atomic<int> before{0};
        std::atomic<int> seen_short{0};
        require_all_ok(run_ranks(comms, [&](Communicator& c) {
            before.fetch_add(1);
            Status s = c.barrier();
            if (before.load() != n) {
                seen_short.fetch_add(1);
            }
            return s;
        }));
        CHECK(seen_short.load() == 0);
    }
}

TEST_CASE("local communicator: bad arguments are kInvalidArgument") {
    Comms comms = make_group(1);
    Communicator& c = *comms[0];
    float x = 0;
    CHECK(c.all_reduce(&x, -1, DType::kF32, ReduceOp::kSum).code() ==
          StatusCode::kInvalidArgument);
    const Status fp8 = c.all_reduce(&x, 1, DType::kF8E4M3, ReduceOp::kSum);
    CHECK(fp8.code() == StatusCode::kInvalidArgument);
    CHECK(fp8.message() == "all_reduce: element type F8_E4M3 cannot be reduced, expected F32, "
                           "BF16 or F16");
    CHECK(c.reduce_scatter(&x, &x, 1, DType::kI8, ReduceOp::kMax).code() ==
          StatusCode::kInvalidArgument);
    CHECK(c.broadcast(&x, 1, DType::kF32, 1).code() == StatusCode::kInvalidArgument);
    CHECK(c.broadcast(&x, 1, DType::kF32, -1).code() == StatusCode::kInvalidArgument);
    const std::vector<int64_t> two = {1, 1};
    CHECK(c.all_to_all(&x, two, &x, two, DType::kF32).code() == StatusCode::kInvalidArgument);
    CHECK(c.all_gather(&x, &x, -3, DType::kF32).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("local communicator: ranks that disagree on the count all get kInvalidArgument") {
    Comms comms = make_group(3);
    const auto results = run_ranks(comms, [&](Communicator& c) {
        std::vector<float> data(4, 1);
        return c.all_reduce(data.data(), c.rank() == 2 ? 4 : 3, DType::kF32, ReduceOp::kSum);
    });
    for (const Status& s : results) {
        CHECK(s.code() == StatusCode::kInvalidArgument);
    }
    // The group still works afterwards.
    require_all_ok(run_ranks(comms, [](Communicator& c) { return c.barrier(); }));
}

TEST_CASE("local communicator: abort wakes the waiting ranks with the aborting rank's reason") {
    for (int n : {1, 2, 3, 4}) {
        CAPTURE(n);
        Comms comms = make_group(n);
        const int aborting = n - 1;
        std::mutex mutex;
        const auto results = run_ranks(comms, [&](Communicator& c) {
            if (c.rank() == aborting) {
                c.abort("weights of layer 3 failed to load");
                c.abort("a later reason is ignored");
                return Status::ok_status();
            }
            std::vector<float> data(8, 1);
            return c.all_reduce(data.data(), 8, DType::kF32, ReduceOp::kSum);
        });
        for (int r = 0; r < n; ++r) {
            if (r == aborting) {
                continue;
            }
            CHECK(results[static_cast<size_t>(r)].code() == StatusCode::kAborted);
            CHECK(results[static_cast<size_t>(r)].message() ==
                  "rank " + std::to_string(aborting) +
                      " aborted: weights of layer 3 failed to load");
        }
        // Every later call of every rank fails the same way, without waiting.
        for (auto& c : comms) {
            float x = 0;
            const Status later = c->broadcast(&x, 1, DType::kF32, 0);
            CHECK(later.code() == StatusCode::kAborted);
            CHECK(later.message().find("rank " + std::to_string(aborting) + " aborted") == 0);
            CHECK(c->barrier().code() == StatusCode::kAborted);
        }
    }
}

TEST_CASE("local communicator: abort from another thread wakes ranks blocked in a barrier") {
    Comms comms = make_group(4);
    std::atomic<int> waiting{0};
    std::vector<Status> results(3);
    std::vector<std::thread> threads;
    for (size_t r = 0; r < 3; ++r) {
        threads.emplace_back([&, r] {
            waiting.fetch_add(1);
            results[r] = comms[r]->barrier();  // rank 3 never comes
        });
    }
    while (waiting.load() < 3) {
        std::this_thread::yield();
    }
    comms[3]->abort("device lost");
    for (std::thread& t : threads) {
        t.join();
    }
    for (const Status& s : results) {
        CHECK(s.code() == StatusCode::kAborted);
        CHECK(s.message() == "rank 3 aborted: device lost");
    }
}

// Splits every rank of `comms` by color(rank) and key(rank), one thread per rank.
std::vector<Result<std::unique_ptr<Communicator>>> split_all(Comms& comms,
                                                             const std::function<int(int)>& color,
                                                             const std::function<int(int)>& key) {
    std::vector<Result<std::unique_ptr<Communicator>>> out;
    for (size_t r = 0; r < comms.size(); ++r) {
        out.emplace_back(Status(StatusCode::kInternal, "not run"));
    }
    std::vector<std::thread> threads;
    for (size_t r = 0; r < comms.size(); ++r) {
        threads.emplace_back([&, r] {
            const int rank = comms[r]->rank();
            out[r] = comms[r]->split(color(rank), key(rank));
        });
    }
    for (std::thread& t : threads) {
        t.join();
    }
    return out;
}

Comms unwrap(std::vector<Result<std::unique_ptr<Communicator>>> results) {
    Comms comms;
    for (size_t r = 0; r < results.size(); ++r) {
        INFO("rank " << r);
        REQUIRE_MESSAGE(results[r].ok(), results[r].status().to_string());
        comms.push_back(std::move(*results[r]));
    }
    return comms;
}

TEST_CASE("local communicator: split makes the rows and columns of a grid") {
    // 2 x 3: rank r is column r % 3 of row r / 3, as a tensor 3 x expert 2 grid numbers them.
    Comms all = make_group(6);
    Comms rows = unwrap(split_all(
        all, [](int r) { return r / 3; }, [](int r) { return r % 3; }));
    // Keys that reverse the order: rank 4 is first in its column.
    Comms columns = unwrap(split_all(
        all, [](int r) { return r % 3; }, [](int r) { return -(r / 3); }));
    for (int r = 0; r < 6; ++r) {
        CAPTURE(r);
        CHECK(rows[static_cast<size_t>(r)]->size() == 3);
        CHECK(rows[static_cast<size_t>(r)]->rank() == r % 3);
        CHECK(columns[static_cast<size_t>(r)]->size() == 2);
        CHECK(columns[static_cast<size_t>(r)]->rank() == 1 - r / 3);
    }
    // Row sums and column gathers see only their own members, while both run at once.
    std::vector<float> row_sum(6);
    std::vector<std::vector<float>> column_gather(6, std::vector<float>(2));
    std::vector<Status> results(6);
    std::vector<std::thread> threads;
    for (size_t r = 0; r < 6; ++r) {
        threads.emplace_back([&, r] {
            float x = static_cast<float>(r);
            Status s = rows[r]->all_reduce(&x, 1, DType::kF32, ReduceOp::kSum);
            row_sum[r] = x;
            if (s.ok()) {
                const float mine = static_cast<float>(10 * r);
                s = columns[r]->all_gather(&mine, column_gather[r].data(), 1, DType::kF32);
            }
            results[r] = s;
        });
    }
    for (std::thread& t : threads) {
        t.join();
    }
    require_all_ok(results);
    for (size_t r = 0; r < 6; ++r) {
        CAPTURE(r);
        CHECK(row_sum[r] == (r < 3 ? 0 + 1 + 2 : 3 + 4 + 5));
        const float upper = static_cast<float>(10 * (r % 3));  // rank of row 0
        const float lower = static_cast<float>(10 * (r % 3 + 3));
        CHECK(column_gather[r] == std::vector<float>{lower, upper});  // row 1 ranks first
    }
    // A split of a split: the first row's ranks each alone.
    Comms first_row(std::make_move_iterator(rows.begin()),
                    std::make_move_iterator(rows.begin() + 3));
    Comms singles = unwrap(split_all(
        first_row, [](int r) { return r; }, [](int) { return 0; }));
    for (const auto& c : singles) {
        CHECK(c->size() == 1);
        CHECK(c->rank() == 0);
        float x = 5;
        CHECK(c->all_reduce(&x, 1, DType::kF32, ReduceOp::kSum).ok());
        CHECK(x == 5);
    }
}

TEST_CASE("local communicator: a negative split color fails on that rank only") {
    Comms all = make_group(3);
    auto results = split_all(
        all, [](int r) { return r == 1 ? -1 : 0; }, [](int r) { return r; });
    CHECK(results[1].status().code() == StatusCode::kInvalidArgument);
    CHECK(results[1].status().message() == "split: color -1 is negative, expected 0 or more");
    REQUIRE(results[0].ok());
    REQUIRE(results[2].ok());
    CHECK((*results[0])->size() == 2);
    CHECK((*results[2])->rank() == 1);
}

TEST_CASE("local communicator: an abort in one sub-group wakes ranks waiting in every group") {
    Comms all = make_group(4);
    Comms rows = unwrap(split_all(
        all, [](int r) { return r / 2; }, [](int r) { return r % 2; }));
    Comms columns = unwrap(split_all(
        all, [](int r) { return r % 2; }, [](int r) { return r / 2; }));
    // Rank 3 aborts through its column; rank 0 waits in its row (for rank 1), rank 1 in the
    // group of all (for everyone), rank 2 in its column (for rank 0).
    std::atomic<int> waiting{0};
    std::vector<Status> results(3);
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
        waiting.fetch_add(1);
        results[0] = rows[0]->barrier();
    });
    threads.emplace_back([&] {
        waiting.fetch_add(1);
        results[1] = all[1]->barrier();
    });
    threads.emplace_back([&] {
        waiting.fetch_add(1);
        results[2] = columns[2]->barrier();
    });
    while (waiting.load() < 3) {
        std::this_thread::yield();
    }
    columns[3]->abort("expert weights lost");
    for (std::thread& t : threads) {
        t.join();
    }
    for (const Status& s : results) {
        CHECK(s.code() == StatusCode::kAborted);
        // The rank in the group of all, whichever group it aborted through.
        CHECK(s.message() == "rank 3 aborted: expert weights lost");
    }
    // Splitting an aborted group fails as every other call does.
    auto late = split_all(
        all, [](int) { return 0; }, [](int r) { return r; });
    for (const auto& result : late) {
        CHECK(result.status().code() == StatusCode::kAborted);
    }
}

}  // namespace
}  // namespace sluice::inference
