#include "connectors/postgres_cluster.h"

#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

namespace sluice::connectors {

namespace fs = std::filesystem;

namespace {

// Runs argv (no shell), optionally as another user; returns the exit code or -1.
int run(const std::vector<std::string>& argv, const std::string& run_as,
        const fs::path& output) {
    std::vector<std::string> full;
    if (!run_as.empty()) {
        full = {"/usr/sbin/runuser", "-u", run_as, "--"};
    }
    full.insert(full.end(), argv.begin(), argv.end());
    const pid_t pid = ::fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        FILE* out = std::fopen(output.c_str(), "a");
        if (out != nullptr) {
            ::dup2(::fileno(out), STDOUT_FILENO);
            ::dup2(::fileno(out), STDERR_FILENO);
        }
        std::vector<char*> args;
        for (std::string& arg : full) {
            args.push_back(arg.data());
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

std::string tail(const fs::path& path) {
    std::ifstream in(path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    return text.size() > 1500 ? text.substr(text.size() - 1500) : text;
}

}  // namespace

std::optional<fs::path> PostgresCluster::find_binaries() {
    if (const char* configured = std::getenv("SLUICE_PG_BIN"); configured != nullptr) {
        if (fs::exists(fs::path(configured) / "initdb")) {
            return fs::path(configured);
        }
    }
    std::error_code ec;
    std::optional<fs::path> best;
    int best_version = -1;
    for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
        const int version = std::atoi(entry.path().filename().c_str());
        if (version > best_version && fs::exists(entry.path() / "bin" / "initdb")) {
            best_version = version;
            best = entry.path() / "bin";
        }
    }
    if (best) {
        return best;
    }
    if (const char* path = std::getenv("PATH"); path != nullptr) {
        std::stringstream dirs(path);
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            if (!dir.empty() && fs::exists(fs::path(dir) / "initdb") &&
                fs::exists(fs::path(dir) / "pg_ctl")) {
                return fs::path(dir);
            }
        }
    }
    return std::nullopt;
}

Result<std::unique_ptr<PostgresCluster>> PostgresCluster::start(const fs::path& dir,
                                                                bool durable) {
    auto bin = find_binaries();
    if (!bin) {
        return not_supported("no postgresql server binaries (initdb, pg_ctl) are installed");
    }
    Paths paths;
    paths.bin = *bin;
    paths.dir = fs::absolute(dir);
    paths.durable = durable;
    std::random_device random;
    // Only the unix socket's file name uses the port: no TCP listener, no collisions.
    paths.port = 20000 + static_cast<int>(random() % 40000);
    std::error_code ec;
    fs::create_directories(paths.dir / "data", ec);
    if (ec) {
        return io_error("creating '" + paths.dir.string() + "': " + ec.message());
    }
    if (::geteuid() == 0) {
        const passwd* user = ::getpwnam("postgres");
        if (user == nullptr) {
            return failed_precondition(
                "running as root and there is no 'postgres' user to run postgresql as");
        }
        paths.run_as = "postgres";
        for (const fs::path& path : {paths.dir, paths.dir / "data"}) {
            if (::chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
                return io_error("chown of '" + path.string() + "' to postgres failed");
            }
        }
        fs::permissions(paths.dir, fs::perms::owner_all | fs::perms::group_exec |
                                       fs::perms::others_exec, ec);
    }
    const fs::path log = paths.dir / "setup.log";
    if (run({(paths.bin / "initdb").string(), "-D", (paths.dir / "data").string(), "-U",
             "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"},
            paths.run_as, log) != 0) {
        return unavailable("initdb failed: " + tail(log));
    }
    auto cluster = std::make_unique<PostgresCluster>(std::move(paths));
    SLUICE_RETURN_IF_ERROR(cluster->start_server());
    return cluster;
}

Status PostgresCluster::start_server() {
    const std::string options =
        "-c wal_level=logical -c max_replication_slots=16 -c max_wal_senders=16 "
        "-c listen_addresses='' -c unix_socket_directories='" + paths_.dir.string() +
        "' -p " + std::to_string(paths_.port) +
        (paths_.durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
    const fs::path log = paths_.dir / "server.log";
    if (run({(paths_.bin / "pg_ctl").string(), "-D", (paths_.dir / "data").string(), "-l",
             log.string(), "-o", options, "-w", "-t", "60", "start"},
            paths_.run_as, paths_.dir / "setup.log") != 0) {
        return unavailable("postgresql did not start: " + tail(log));
    }
    running_ = true;
    return Status();
}

Status PostgresCluster::stop() {
    if (!running_) {
        return Status();
    }
    running_ = false;
    if (run({(paths_.bin / "pg_ctl").string(), "-D", (paths_.dir / "data").string(), "-m",
             "fast", "-w", "stop"},
            paths_.run_as, paths_.dir / "setup.log") != 0) {
        return unavailable("postgresql did not stop: " + tail(paths_.dir / "setup.log"));
    }
    return Status();
}

Status PostgresCluster::restart() {
    SLUICE_RETURN_IF_ERROR(stop());
    return start_server();
}

PostgresCluster::~PostgresCluster() {
    [[maybe_unused]] Status ignored = stop();
}

std::string PostgresCluster::conninfo(const std::string& dbname) const {
    return "host=" + paths_.dir.string() + " port=" + std::to_string(paths_.port) +
           " user=postgres dbname=" + dbname;
}

}  // namespace sluice::connectors
