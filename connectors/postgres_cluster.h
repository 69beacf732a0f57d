#pragma once
// PostgresCluster: a throwaway PostgreSQL server in a folder of its own, for tests and
// benchmarks of the PostgreSQL source. initdb (trust authentication, wal_level=logical), then
// pg_ctl start with a unix socket in that folder and no TCP listener, so that clusters of
// parallel runs never collide. PostgreSQL refuses to run as root: when the process is root the
// server's commands run as the "postgres" system user (runuser), which must exist.
//
// Thread safety: owned by one thread.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"

namespace sluice::connectors {

class PostgresCluster {
public:
    // The folder holding initdb and pg_ctl: $SLUICE_PG_BIN, else the newest
    // /usr/lib/postgresql/<n>/bin, else a folder on PATH. nullopt when none is installed.
    static std::optional<std::filesystem::path> find_binaries();

    // Creates and starts a cluster under `dir` (which must exist and be empty or absent).
    // `durable`: fsync on (off makes tests faster; benchmarks keep it on).
    // Errors: kNotSupported without binaries; kFailedPrecondition when running as root without a
    // postgres user; kUnavailable when initdb or the server fails (the log's tail is in the
    // message).
    static Result<std::unique_ptr<PostgresCluster>> start(const std::filesystem::path& dir,
                                                          bool durable = false);
    ~PostgresCluster();  // stops the server
    PostgresCluster(const PostgresCluster&) = delete;
    PostgresCluster& operator=(const PostgresCluster&) = delete;

    // "host=<socket dir> port=<port> user=postgres dbname=<db>".
    std::string conninfo(const std::string& dbname = "postgres") const;

    Status stop();     // fast shutdown: clients are disconnected
    Status restart();  // stop, then start with the same data
    bool running() const { return running_; }

    struct Paths {
        std::filesystem::path bin;
        std::filesystem::path dir;
        std::string run_as;  // empty, or the user to run server commands as
        int port = 0;
        bool durable = false;
    };
    explicit PostgresCluster(Paths paths) : paths_(std::move(paths)) {}

private:
    Status start_server();
    Paths paths_;
    bool running_ = false;
};

}  // namespace sluice::connectors
