#include "app/serve_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <thread>

#include "app/agent_model_use.h"
#include "app/agent_routes.h"
#include "app/build_info.h"
#include "app/catalog_routes.h"
#include "app/config_commands.h"
#include "app/console_routes.h"
#include "app/data_dir.h"
#include "app/engine_embedder.h"
#include "app/eval_routes.h"
#include "app/gateway_routes.h"
#include "app/governance_http.h"
#include "app/health_routes.h"
#include "app/http_server.h"
#include "app/index_catalog.h"
#include "app/index_deps.h"
#include "app/lineage_routes.h"
#include "app/logging.h"
#include "app/metrics.h"
#include "app/model_host.h"
#include "app/openai_routes.h"
#include "app/policy_routes.h"
#include "app/principal_routes.h"
#include "app/readiness.h"
#include "app/source_routes.h"
#include "app/stream_registry.h"
#include "app/sync_service.h"
#include "app/vector_search_routes.h"
#include "common/log.h"
#include "governance/governance.h"
#include "retrieval/index_manager.h"

namespace sluice::app {
namespace {

// The first admin's token, made with the catalog and shown once, on stderr only (only its hash
// is stored, so it can never be shown again): once the port is bound, just before "listening",
// so that a started server ends its startup output with it; or, when startup fails after it was
// made, beside the error (the destructor), so that it is never lost.
class FirstAdminToken {
public:
    explicit FirstAdminToken(std::string secret) : secret_(std::move(secret)) {}
    ~FirstAdminToken() { show(); }
    FirstAdminToken(const FirstAdminToken&) = delete;
    FirstAdminToken& operator=(const FirstAdminToken&) = delete;

    void show() {
        if (secret_.empty()) {
            return;
        }
        std::cerr << "\n=== SLUICE ADMIN TOKEN (shown once; store it now) ===\n"
                  << "admin token: " << secret_ << "\n"
                  << "=== END SLUICE ADMIN TOKEN ===\n\n"
                  << std::flush;
        secret_.clear();
    }

private:
    std::string secret_;
};

// A signal handler can reach only static storage, so the received signals live here: the count
// (a second signal forces the exit) and the last number. Both are lock-free atomics, which are
// async-signal-safe. Whichever thread the kernel picks runs the handler; the watcher thread in
// run_server acts on it.
std::atomic<int> g_signal_count{0};
std::atomic<int> g_last_signal{0};

extern "C" void record_shutdown_signal(int number) {
    g_last_signal.store(number);
    g_signal_count.fetch_add(1);
}

void install_shutdown_handlers() {
    g_signal_count.store(0);
    struct sigaction action {};
    action.sa_handler = record_shutdown_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

HttpServerOptions server_options(const Config& config) {
    return HttpServerOptions{.host = config.server.host,
                             .port = config.server.port,
                             .threads = config.server.threads,
                             .max_threads = config.server.max_threads,
                             .max_body_bytes = config.server.max_body_bytes,
                             .read_timeout_s = config.server.read_timeout_s,
                             .write_timeout_s = config.server.write_timeout_s,
                             .access_log = config.log.access_log};
}

}  // namespace

int run_server(const Config& config) {
    install_shutdown_handlers();

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

    auto data_dir = DataDir::open(config.storage.data_dir, DataDirMode::kCreate);
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

    governance::GovernanceOptions governance_options;
    governance_options.audit.checkpoint_every = config.governance.audit_checkpoint_every;
    governance_options.audit.acknowledge = config.governance.audit_acknowledge == "durable"
                                               ? governance::AuditAcknowledge::kDurable
                                               : governance::AuditAcknowledge::kQueued;
    governance_options.secret_key_file = config.governance.secret_key_file;
    auto gov = governance::Governance::open((*data_dir)->path(), governance_options);
    if (!gov.ok()) {
        log::error("server", "cannot open the catalog", {{"error", gov.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << gov.status().message() << "\n";
        return 1;
    }
    auto bootstrap = (*gov)->bootstrap_admin();
    if (!bootstrap.ok()) {
        log::error("server", "cannot create the first admin", {{"error", bootstrap.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << bootstrap.status().message() << "\n";
        return 1;
    }
    // Never through the log sink; see FirstAdminToken.
    FirstAdminToken first_admin_token(bootstrap->has_value() ? (*bootstrap)->secret : "");
    if (bootstrap->has_value()) {
        log::info("server", "created the first admin", {{"principal", "admin"},
                                                        {"token_id", (*bootstrap)->info.id}});
        log::flush();
    }

    // Indexes whose embedder is "model" reach the engine through this slot: they open now, the
    // model loads later (or never), and the slot is lent the engine only while the model host
    // exists (see `lending` below).
    auto engine_slot = std::make_shared<EngineSlot>();
    const retrieval::IndexDeps index_deps = server_index_deps(engine_slot, config.model);
    auto indexes = retrieval::IndexManager::open((*data_dir)->path() / "indexes", index_deps);
    if (!indexes.ok()) {
        log::error("server", "cannot open vector indexes", {{"error", indexes.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << indexes.status().message() << "\n";
        return 1;
    }

    // Every source of the catalog bound to an index is synced continuously (one thread each)
    // while serving; a bindings file of an older release moves into the catalog here.
    auto syncs =
        SyncService::open((*data_dir)->path(), **indexes, **gov, sync_options(config.sync));
    if (!syncs.ok()) {
        log::error("server", "cannot open the sources", {{"error", syncs.status().message()}});
        log::flush();
        std::cerr << "sluice serve: " << syncs.status().message() << "\n";
        return 1;
    }

    // Every stored index is a catalog securable; those made before that, or offline (sources
    // bound by `sluice source add --index`, created above), are registered now, owned by the admin.
    if (Status registered = register_stored_indexes(**gov, **indexes); !registered.ok()) {
        log::error("server", "cannot register the vector indexes in the catalog",
                   {{"error", registered.message()}});
        log::flush();
        std::cerr << "sluice serve: " << registered.message() << "\n";
        return 1;
    }

    auto agent_store = agents::AgentStore::open((*data_dir)->path() / governance::kCatalogFile,
                                                 (*gov)->secrets());
    auto trace_store = agents::TraceStore::open((*data_dir)->path() / governance::kCatalogFile);
    auto eval_store =
        agents::evaluation::EvalStore::open((*data_dir)->path() / governance::kCatalogFile);
    if (!agent_store.ok() || !trace_store.ok() || !eval_store.ok()) {
        Status failed = !agent_store.ok()  ? agent_store.status()
                        : !trace_store.ok() ? trace_store.status()
                                            : eval_store.status();
        log::error("server", "cannot open the agents tables", {{"error", failed.message()}});
        log::flush();
        std::cerr << "sluice serve: " << failed.message() << "\n";
        return 1;
    }

    Metrics metrics(build);
    HttpServer server(server_options(config), metrics);
    // The console's static files are open; its API calls carry the user's bearer token.
    std::vector<std::string> open_paths = {"/healthz", "/readyz", "/", "/console"};
    if (config.server.metrics_public) {
        open_paths.emplace_back("/metrics");
    }
    governance::Governance& governance = **gov;
    govern_requests(server, governance, open_paths, {kConsolePrefix});
    // Declared after the server: destroyed (engine stopped) once serve() has returned.
    ModelHost model(config.model, &readiness);
    // Destroyed before `model`, after everything declared below (agents, judges) and after the
    // syncs have stopped: it waits for embeddings in flight and refuses new ones, so that no
    // index uses the engine once the host stops it.
    EngineSlot::Lending lending(
        *engine_slot, [&model]() -> Result<std::shared_ptr<inference::Engine>> {
            std::shared_ptr<inference::Engine> engine = model.engine();
            if (!engine) {
                return model.unavailable();
            }
            return engine;
        });
    StreamRegistry streams;
    ServedChatModel served_model(model);
    agents::AgentRuntime runtime(
        governance, **agent_store, **trace_store, indexes->get(),
        [&served_model,
         &model](const std::string& endpoint) -> Result<std::shared_ptr<agents::ChatModel>> {
            if (!endpoint.empty() && endpoint != model.model_id()) {
                return not_found("model endpoint '" + endpoint + "' is not served here; '" +
                                 model.model_id() + "' is");
            }
            return served_model.get();
        },
        // Runs use the served model under its governance, as the OpenAI routes do.
        agent_model_governor(governance, [&served_model] { return served_model.securable(); }));
    // Judges a configured share of live answers on its own thread (docs/evaluation.md).
    agents::evaluation::Monitor monitor(
        **eval_store, [&served_model] { return served_model.get(); },
        agents::evaluation::JudgeOptions{});
    AgentServices agent_services{governance, **indexes,    **agent_store, **trace_store,
                                 runtime,    served_model, &monitor};
    EvalServices eval_services{governance,   **indexes,
                               **eval_store, **trace_store,
                               runtime,      [&served_model] { return served_model.get(); },
                               &monitor,     [&served_model] { return served_model.securable(); }};
    add_health_routes(server, readiness, metrics);
    add_console_routes(server);
    add_openai_routes(server, model, OpenAiOptions{.governance = &governance, .streams = &streams},
                      agent_chat_delegate(agent_services));
    add_agent_routes(server, agent_services);
    add_eval_routes(server, eval_services);
    add_feedback_routes(server, eval_services);
    metrics.add_collector([&model] { return model.metrics_text(); });
    add_catalog_routes(server, governance,
                       [&governance, &indexes](const governance::RequestContext& caller,
                                               const std::string& full_name) -> Result<bool> {
                           auto found = agents::find_index(**indexes, full_name);
                           if (!found.ok()) {
                               return false;
                           }
                           SLUICE_RETURN_IF_ERROR(
                               remove_index(governance, **indexes, caller, std::move(*found)));
                           return true;
                       },
                       [&indexes](const std::string& full_name) -> std::optional<nlohmann::json> {
                           auto found = agents::find_index(**indexes, full_name);
                           if (!found.ok()) {
                               return std::nullopt;
                           }
                           const retrieval::IndexSettings& settings = found->index->settings();
                           return nlohmann::json{{"embedder", settings.embedder},
                                                 {"embedding_dimension", settings.dimension}};
                       });
    add_principal_routes(server, governance);
    add_gateway_routes(server, governance);
    add_lineage_routes(server, governance);
    add_policy_routes(server, governance);
    add_vector_search_routes(server, **indexes, governance);
    add_source_routes(server, governance, **syncs);
    metrics.add_collector([&syncs] { return (*syncs)->metrics_text(); });

    if (Status bound = server.bind(); !bound.ok()) {
        log::error("server", "cannot listen", {{"error", bound.message()}});
        log::flush();
        std::cerr << "sluice serve: " << bound.message() << "\n";
        return 1;
    }
    log::flush();
    first_admin_token.show();
    std::string address = config.server.host + ":" + std::to_string(server.port());
    readiness.set("http", true, "listening on " + address);
    log::info("server", "listening", {{"address", address}, {"threads", config.server.threads}});
    model.start_loading();
    (*syncs)->start();

    std::atomic<bool> served{false};
    // Watches for shutdown signals in short slices, so that it also notices when serve()
    // returns on its own, and enforces the shutdown deadline.
    std::jthread signal_thread([&] {
        int handled = 0;
        int handled_count = 0;
        auto first_signal_at = std::chrono::steady_clock::time_point::min();
        auto deadline = std::chrono::steady_clock::time_point::max();
        // Streams in flight at the signal may run until shortly before the deadline; then they
        // are told to end (a final chunk and [DONE]) so that none is cut mid-answer.
        auto end_streams_at = std::chrono::steady_clock::time_point::max();
        bool draining_streams = false;
        while (!served.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            int received = g_signal_count.load();
            // A signal sent to a whole process group (a wrapper and the server) arrives twice
            // at once; only a second signal a moment later means "stop now".
            bool within_first_second = handled == 1 &&
                                       std::chrono::steady_clock::now() - first_signal_at <=
                                           std::chrono::seconds(1);
            if (within_first_second) {
                handled_count = received;  // the same shutdown request, delivered twice
            }
            if (handled == 1 && received > handled_count) {
                log::error("server", "second signal: exiting without waiting",
                           {{"in_flight", server.in_flight()}});
                log::flush();
                std::_Exit(1);
            }
            if (received > 0 && handled == 0) {
                handled = 1;
                handled_count = received;
                first_signal_at = std::chrono::steady_clock::now();
                int number = g_last_signal.load();
                log::info("server", "shutting down",
                          {{"signal", number == SIGINT ? "SIGINT" : "SIGTERM"},
                           {"in_flight", server.in_flight()},
                           {"deadline_s", config.server.shutdown_deadline_s}});
                deadline = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(config.server.shutdown_deadline_s));
                readiness.set_draining();
                const auto deadline_s = std::chrono::duration<double>(
                    config.server.shutdown_deadline_s);
                const auto margin = std::min<std::chrono::duration<double>>(
                    std::chrono::seconds(2), deadline_s / 4);
                end_streams_at =
                    deadline -
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(margin);
                if (streams.active() > 0) {
                    // Logged once new requests are refused: whoever reads the line (an
                    // operator, a test) may rely on it.
                    server.drain();
                    streams.drain();
                    log::info("server", "letting streams finish", {{"streams", streams.active()}});
                    draining_streams = true;
                } else {
                    server.stop();
                }
            }
            if (draining_streams) {
                if (streams.active() == 0) {
                    draining_streams = false;
                    server.stop();
                } else if (std::chrono::steady_clock::now() >= end_streams_at &&
                           !streams.ending()) {
                    log::info("server", "ending streams before the shutdown deadline",
                              {{"streams", streams.active()}});
                    streams.end_all();
                }
            }
            if (handled == 1 && std::chrono::steady_clock::now() > deadline && !served.load()) {
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
    (*syncs)->stop();
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
