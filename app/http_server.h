#pragma once
// The HTTP server (cpp-httplib) with what every route gets for free: an X-Request-Id on every
// response (the client's when well-formed, else a fresh one), the JSON error envelope for every
// 4xx/5xx including 404, 405 (with Allow), 413 and parse failures, a catch-all for bugs that
// answers 500, per-route metrics and one structured access-log line per request.
//
// Lifecycle: register routes, bind(), then serve() blocks on the calling thread until stop()
// is called from another thread; serve() returns once in-flight requests have finished.
//
// Thread safety: route registration and bind() on one thread before serve(); stop(), port()
// and in_flight() from any thread; handlers run on the worker threads.

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <httplib.h>

#include "app/elastic_thread_pool.h"
#include "app/metrics.h"
#include "common/result.h"

namespace sluice::app {

struct HttpServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0: any free port
    // Connection threads (elastic_thread_pool.h): `threads` always run; more start while
    // every one is busy (streams, keep-alive), up to `max_threads`.
    int threads = 8;
    int max_threads = 1024;
    std::int64_t max_body_bytes = 8 * 1024 * 1024;
    double read_timeout_s = 30;
    double write_timeout_s = 30;
    bool access_log = true;
};

// Counts bytes a response's content provider wrote (a stream), for the access log's bytes_out.
// Call on the connection's thread, from the provider, as it writes.
void count_streamed_bytes(std::size_t bytes);

// Who an authenticated request speaks for.
struct Identity {
    std::int64_t principal_id = 0;
    std::string principal;
    std::string token_id;  // never the secret
    std::uint64_t audit_ticket = 0;  // audit records held back until the request finishes
};

// What a handler knows about its request beyond httplib's view of it.
struct RequestInfo {
    std::string request_id;
    std::string client_address;
    // Set on every request that passed the authenticator; absent on open paths and when no
    // authenticator is installed.
    std::optional<Identity> identity;
};

using HttpHandler =
    std::function<void(const RequestInfo&, const httplib::Request&, httplib::Response&)>;

// Checks a request's credentials before routing. Returns the identity, or a failed Status
// (kUnauthenticated for bad credentials, which the server answers with 401 and the envelope;
// other codes map as usual). Runs on the worker threads; must be thread-safe.
using Authenticator = std::function<Result<Identity>(
    const httplib::Request&, const std::string& request_id, const std::string& client_address)>;

// Runs once per authenticated request after its handler and before any byte of the response is
// written (making the request's held-back audit records durable). A failure replaces the
// response with its error. Runs on the worker threads; must be thread-safe.
using RequestFinisher = std::function<Status(const RequestInfo&)>;

class HttpServer {
public:
    HttpServer(HttpServerOptions options, Metrics& metrics);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // `pattern` is a regular expression matched against the whole path (httplib 0.11); it
    // also labels metrics. Methods: GET (also answers HEAD), POST, PUT, PATCH, DELETE.
    void route(const std::string& method, const std::string& pattern, HttpHandler handler);

    // Installs the pre-routing authentication check. Every request whose path is not in
    // `open_paths` (exact matches, e.g. "/healthz") must pass it, including requests for paths
    // no route serves, so that unauthenticated clients learn nothing about the routes.
    // Paths starting with one of `open_prefixes` (e.g. "/console/", the static web console) are
    // open too; such a prefix must be served by routes that only ever answer static content.
    // Call before serve().
    void set_authenticator(Authenticator authenticator, std::vector<std::string> open_paths,
                           std::vector<std::string> open_prefixes = {});
    // Installs the finisher of authenticated requests. Call before serve().
    void set_request_finisher(RequestFinisher finisher);

    // Binds the listening socket. kUnavailable names the address when it cannot be bound.
    Status bind();
    // The bound port (useful with port 0); 0 before bind().
    int port() const { return port_.load(); }

    // Accepts and serves until stop(); returns after in-flight requests finish.
    Status serve();
    // Stops accepting; serve() returns when the requests being handled are done. Responses
    // still streaming are cut (httplib ends its chunked writers): drain() first to avoid that.
    void stop();
    // Keeps the listener open but answers every new request except the open paths with 503
    // ("the server is shutting down", Connection: close), so that responses in flight, streams
    // included, can finish before stop().
    void drain() { draining_.store(true); }

    int in_flight() const { return in_flight_.load(); }
    // The connection threads now; zeros before serve() and after it returns.
    ElasticPoolStats thread_stats() const;

private:
    struct Route {
        std::string method;
        std::string pattern;
        std::regex matcher;
    };

    void install_hooks();
    std::vector<std::string> allowed_methods(const std::string& path) const;

    HttpServerOptions options_;
    Metrics& metrics_;
    Authenticator authenticator_;
    RequestFinisher finisher_;
    std::vector<std::string> open_paths_;
    std::vector<std::string> open_prefixes_;

    bool is_open_path(const std::string& path) const;
    std::unique_ptr<httplib::Server> server_;
    std::vector<Route> routes_;
    std::atomic<int> port_{0};
    std::atomic<int> in_flight_{0};
    std::atomic<bool> draining_{false};
    std::atomic<int> socket_fd_{-1};  // the last socket httplib made (the listener, at bind())
    // The connection threads while serve() runs; httplib gets a queue that forwards to them.
    mutable std::mutex pool_mutex_;
    std::unique_ptr<ElasticThreadPool> pool_;  // guarded by pool_mutex_

    void widen_backlog();
};

// A request id from the client's X-Request-Id if it is 1-128 characters of [A-Za-z0-9._:-],
// otherwise a fresh random one ("req_" and 24 hex digits).
std::string request_id_from(const httplib::Request& req);

}  // namespace sluice::app
