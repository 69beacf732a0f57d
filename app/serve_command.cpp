#include "app/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "app/build_info.h"
#include "app/config_commands.h"
#include "app/data_dir.h"
#include "app/health_routes.h"
#include "app/http_embedder.h"
#include "app/http_server.h"
#include "app/logging.h"
#include "app/metrics.h"
#include "app/readiness.h"
#include "app/vector_search_routes.h"
#include "retrieval/index_manager.h"
#include "common/log.h"

namespace sluice::app {
namespace {

// Signals are taken by one thread with sigwait, so no handler runs in an arbitrary thread.
// They must be blocked before any other thread starts, since threads inherit the mask.
sigset_t shutdown_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

// Libraries start threads before main() runs (OpenBLAS, which FAISS links, starts its pool from
// a library constructor); those threads keep the default signal mask, so a process-directed
// SIGTERM can land on one of them. A handler catches it there and leaves the number for the
// signal thread, which checks it between its waits. A signal handler can only reach state
// through a global, hence this one, lock-free and written nowhere else.
std::atomic<int> g_forwarded_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void forward_shutdown_signal(int signal_number) {
    g_forwarded_signal.store(signal_number);
}

void install_forwarding_handlers() {
    struct sigaction action {};
    action.sa_handler = forward_shutdown_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

HttpServerOptions server_options(const Config& config) {
    return HttpServerOptions{.host = config.server.host,
                             .port = config.server.port,
                             .threads = config.server.threads,
                             .max_body_bytes = config.server.max_body_bytes,
                             .read_timeout_s = config.server.read_timeout_s,
                             .write_timeout_s = config.server.write_timeout_s,
                             .access_log = config.log.access_log};
}

}  // namespace

int run_server(const Config& config) {
    sigset_t signals = shutdown_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    install_forwarding_handlers();

    Status logging = install_logging(config.log);
    if (!logging.ok()) {
        std::cerr << "sluice serve: " << logging.message() << "\n";
        return 1;
    }
    BuildInfo build = build_info();
    log::info("server", "starting",
              {{"version", build.version},
               {"revision", build.git_revision},
               {"pid", static_cast<long>(::getpid())}});

    Readiness readiness;
    readiness.set("storage", false, "opening data directory");
    readiness.set("http", false, "not listening yet");

    auto data_dir = DataDir::open(config.storage.data_dir);
    if (!data_dir.ok()) {
        log::error("server", "cannot open data directory",
                   {{"path", config.storage.data_dir}, {"error", data_dir.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << data_dir.status().message() << "\n";
        return 1;
    }
    readiness.set("storage", true,
                  "data directory " + (*data_dir)->path().string() + " locked, format version " +
                      std::to_string((*data_dir)->format_version()));

    retrieval::IndexDeps index_deps;
    index_deps.embedders = server_embedder_factory();
    auto indexes = retrieval::IndexManager::open((*data_dir)->path() / "indexes", index_deps);
    if (!indexes.ok()) {
        log::error("server", "cannot open vector indexes", {{"error", indexes.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << indexes.status().message() << "\n";
        return 1;
    }

    Metrics metrics(build);
    HttpServer server(server_options(config), metrics);
    add_health_routes(server, readiness, metrics);
    // No authentication is wired into the server yet, so every query runs as the one local
    // operator identity; documents are readable through the API only when their acl names
    // the principal "local-operator" or the group "local-operators".
    add_vector_search_routes(server, **indexes, [](const httplib::Request&) {
        return Result<retrieval::Reader>(retrieval::Reader{"local-operator", {"local-operators"}});
    });

    if (Status bound = server.bind(); !bound.ok()) {
        log::error("server", "cannot listen", {{"error", bound.message()}});
        log::flush();
        std::cerr << "sluice serve: " << bound.message() << "\n";
        return 1;
    }
    std::string address = config.server.host + ":" + std::to_string(server.port());
    readiness.set("http", true, "listening on " + address);
    log::info("server", "listening", {{"address", address}, {"threads", config.server.threads}});

    std::atomic<bool> served{false};
    // Waits for signals in short slices so that it notices when serve() returns on its own and
    // can enforce the shutdown deadline.
    std::jthread signal_thread([&] {
        bool draining = false;
        auto deadline = std::chrono::steady_clock::time_point::max();
        while (!served.load()) {
            timespec slice{0, 100'000'000};
            int signal_number = sigtimedwait(&signals, nullptr, &slice);
            if (signal_number <= 0) {
                signal_number = g_forwarded_signal.exchange(0);
            }
            if (signal_number > 0 && draining) {
                log::error("server", "second signal: exiting without waiting",
                           {{"in_flight", server.in_flight()}});
                log::flush();
                std::_Exit(1);
            }
            if (signal_number > 0) {
                log::info("server", "shutting down",
                          {{"signal", signal_number == SIGINT ? "SIGINT" : "SIGTERM"},
                           {"in_flight", server.in_flight()},
                           {"deadline_s", config.server.shutdown_deadline_s}});
                draining = true;
                deadline = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(config.server.shutdown_deadline_s));
                readiness.set_draining();
                server.stop();
            }
            if (draining && std::chrono::steady_clock::now() > deadline && !served.load()) {
                log::error("server", "shutdown deadline passed with requests in flight",
                           {{"in_flight", server.in_flight()}});
                log::flush();
                std::_Exit(1);
            }
        }
    });

    int exit_code = 0;
    Status served_status = server.serve();
    served.store(true);
    signal_thread.join();
    if (!served_status.ok()) {
        log::error("server", "http server failed", {{"error", served_status.message()}});
        exit_code = 1;
    }
    if (Status saved = (*indexes)->snapshot_all(); !saved.ok()) {
        log::error("server", "vector snapshots at shutdown failed; the next start replays",
                   {{"error", saved.message()}});
    }
    log::info("server", "stopped", {{"exit_code", exit_code}});
    log::flush();
    return exit_code;
}

void add_serve_command(Cli& cli) {
    auto* command = cli.root().add_subcommand("serve", "Start the HTTP server");
    auto options = std::make_shared<ConfigOptions>();
    add_config_options(*command, *options);
    cli.on_run(command, [options] {
        auto config = effective_config(*options);
        if (!config.ok()) {
            std::cerr << "sluice serve: " << config.status().message() << "\n";
            return 1;
        }
        return run_server(*config);
    });
}

}  // namespace sluice::app
