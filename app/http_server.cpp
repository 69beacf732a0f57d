#include "app/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include "app/http_errors.h"
#include "common/log.h"

namespace sluice::app {
namespace {

// What the hooks of one request share. httplib handles a request start to finish on one worker
// thread (pre-routing, handler, error handler, logger), so a thread-local is its request scope.
struct RequestScope {
    bool active = false;
    std::chrono::steady_clock::time_point start;
    std::string route;
    std::string request_id;
    std::optional<Identity> identity{};
    bool finished = false;  // the request finisher ran
    std::size_t streamed_bytes = 0;  // written by a content provider (streams)
};

thread_local RequestScope t_scope;

}  // namespace

void count_streamed_bytes(std::size_t bytes) { t_scope.streamed_bytes += bytes; }

namespace {

// What httplib sees of the connection threads.
class PoolQueue final : public httplib::TaskQueue {
public:
    explicit PoolQueue(ElasticThreadPool& pool) : pool_(pool) {}
    void enqueue(std::function<void()> fn) override { pool_.enqueue(std::move(fn)); }
    void shutdown() override { pool_.shutdown(); }

private:
    ElasticThreadPool& pool_;
};

bool is_valid_request_id(const std::string& id) {
    if (id.empty() || id.size() > 128) {
        return false;
    }
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

std::string fresh_request_id() {
    thread_local std::mt19937_64 generator{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id = "req_";
    std::uint64_t high = generator();
    std::uint64_t low = generator();
    for (int i = 0; i < 8; ++i) {
        id += kHex[(high >> (60 - 4 * i)) & 0xf];
    }
    for (int i = 0; i < 16; ++i) {
        id += kHex[(low >> (60 - 4 * i)) & 0xf];
    }
    return id;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        out += (i == 0 ? "" : separator) + parts[i];
    }
    return out;
}

std::pair<time_t, time_t> split_seconds(double seconds) {
    auto whole = static_cast<time_t>(seconds);
    auto micros = static_cast<time_t>((seconds - static_cast<double>(whole)) * 1e6);
    return {whole, micros};
}

}  // namespace

std::string request_id_from(const httplib::Request& req) {
    std::string client_id = req.get_header_value("X-Request-Id");
    return is_valid_request_id(client_id) ? client_id : fresh_request_id();
}

HttpServer::HttpServer(HttpServerOptions options, Metrics& metrics)
    : options_(std::move(options)), metrics_(metrics),
      server_(std::make_unique<httplib::Server>()) {
    // httplib takes ownership of the queue it is given (at the start of serve()) and deletes it
    // before serve() returns; the threads behind it are the server's own.
    server_->new_task_queue = [this] {
        std::lock_guard lock(pool_mutex_);
        SLUICE_CHECK(pool_ != nullptr, "httplib asked for a task queue outside serve()");
        return new PoolQueue(*pool_);
    };
    server_->set_payload_max_length(static_cast<std::size_t>(options_.max_body_bytes));
    auto [read_s, read_us] = split_seconds(options_.read_timeout_s);
    server_->set_read_timeout(read_s, read_us);
    auto [write_s, write_us] = split_seconds(options_.write_timeout_s);
    server_->set_write_timeout(write_s, write_us);
    server_->set_keep_alive_timeout(5);
    // Responses are written in several small sends (headers, body); with Nagle's algorithm the
    // second waits for the client's delayed ACK, about 40 ms per request on keep-alive.
    server_->set_tcp_nodelay(true);
    // httplib listens with a backlog of 5: a burst of new connections overflows it and the
    // kernel drops SYNs, which clients retry after a second. Keep the socket (the listening one
    // is the last given before bind() returns) so that bind() can widen the backlog.
    //
    // Not httplib's default options: they set SO_REUSEPORT, with which a second server started
    // on the same port binds as well and the kernel splits the connections between the two
    // (requests and tokens reaching a server of another data directory). SO_REUSEADDR alone
    // lets a restarted server bind over connections in TIME_WAIT, and a port in use fails.
    server_->set_socket_options([this](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        socket_fd_.store(static_cast<int>(sock));
    });
    install_hooks();
}

HttpServer::~HttpServer() = default;

void HttpServer::route(const std::string& method, const std::string& pattern,
                       HttpHandler handler) {
    routes_.push_back(Route{method, pattern, std::regex(pattern)});
    auto wrapped = [pattern, handler = std::move(handler)](const httplib::Request& req,
                                                         httplib::Response& res) {
        t_scope.route = pattern;
        handler(RequestInfo{t_scope.request_id, req.remote_addr, t_scope.identity}, req, res);
    };
    if (method == "GET") {
        server_->Get(pattern, wrapped);
    } else if (method == "POST") {
        server_->Post(pattern, wrapped);
    } else if (method == "PUT") {
        server_->Put(pattern, wrapped);
    } else if (method == "PATCH") {
        server_->Patch(pattern, wrapped);
    } else if (method == "DELETE") {
        server_->Delete(pattern, wrapped);
    } else {
        SLUICE_CHECK(false, "unsupported method in route registration: " + method);
    }
}

void HttpServer::set_authenticator(Authenticator authenticator,
                                   std::vector<std::string> open_paths,
                                   std::vector<std::string> open_prefixes) {
    authenticator_ = std::move(authenticator);
    open_paths_ = std::move(open_paths);
    open_prefixes_ = std::move(open_prefixes);
}

bool HttpServer::is_open_path(const std::string& path) const {
    if (std::find(open_paths_.begin(), open_paths_.end(), path) != open_paths_.end()) {
        return true;
    }
    return std::any_of(open_prefixes_.begin(), open_prefixes_.end(),
                       [&path](const std::string& prefix) { return path.starts_with(prefix); });
}

void HttpServer::set_request_finisher(RequestFinisher finisher) {
    finisher_ = std::move(finisher);
}

std::vector<std::string> HttpServer::allowed_methods(const std::string& path) const {
    std::vector<std::string> methods;
    for (const Route& route : routes_) {
        if (std::regex_match(path, route.matcher)) {
            methods.push_back(route.method);
            if (route.method == "GET") {
                methods.emplace_back("HEAD");
            }
        }
    }
    return methods;
}

void HttpServer::install_hooks() {
    server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        t_scope = RequestScope{.active = true,
                               .start = std::chrono::steady_clock::now(),
                               .route = "unmatched",
                               .request_id = request_id_from(req)};
        res.set_header("X-Request-Id", t_scope.request_id);
        in_flight_.fetch_add(1);
        metrics_.set_in_flight(+1);
        const bool open_path = is_open_path(req.path);
        if (draining_.load() && !open_path) {
            res.set_header("Connection", "close");
            send_error(res, 503, "shutting_down", "the server is shutting down; retry elsewhere",
                       t_scope.request_id);
            return httplib::Server::HandlerResponse::Handled;
        }
        if (!authenticator_ || open_path) {
            return httplib::Server::HandlerResponse::Unhandled;
        }
        Result<Identity> identity = authenticator_(req, t_scope.request_id, req.remote_addr);
        if (!identity.ok()) {
            if (identity.status().code() == StatusCode::kUnauthenticated) {
                res.set_header("WWW-Authenticate", "Bearer realm=\"sluice\"");
            }
            send_status(res, identity.status(), t_scope.request_id);
            return httplib::Server::HandlerResponse::Handled;
        }
        t_scope.identity = std::move(*identity);
        return httplib::Server::HandlerResponse::Unhandled;
    });

    server_->set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
        if (!t_scope.active) {
            // Failed before routing (bad request line, URI too long): no scope was opened.
            t_scope.request_id = request_id_from(req);
        }
        if (!res.body.empty()) {
            return httplib::Server::HandlerResponse::Unhandled;  // the handler wrote its error
        }
        const std::string& id = t_scope.request_id;
        switch (res.status) {
            case 404: {
                std::vector<std::string> allowed = allowed_methods(req.path);
                if (!allowed.empty()) {
                    res.set_header("Allow", join(allowed, ", "));
                    send_error(res, 405, "method_not_allowed",
                               "method " + req.method + " is not allowed on " + req.path +
                                   "; allowed: " + join(allowed, ", "),
                               id);
                    break;
                }
                send_error(res, 404, "not_found", "no route for " + req.method + " " + req.path,
                           id);
                break;
            }
            case 413:
                send_error(res, 413, "payload_too_large",
                           "request body exceeds the limit of " +
                               std::to_string(options_.max_body_bytes) + " bytes",
                           id);
                break;
            case 414:
                send_error(res, 414, "uri_too_long", "request URI is too long", id);
                break;
            case 400:
                // httplib reads no body from a POST, PUT or PATCH that gives neither length nor
                // chunked encoding (`curl -X POST URL` without -d sends neither), and answers
                // 400; it is the length that is missing, as nginx's 411 says.
                if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") &&
                    !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
                    send_error(res, 411, "length_required",
                               "a " + req.method +
                                   " request needs a Content-Length header (Content-Length: 0 "
                                   "for an empty body) or Transfer-Encoding: chunked",
                               id);
                    break;
                }
                send_error(res, 400, "bad_request", "malformed HTTP request", id);
                break;
            default:
                send_error(res, res.status, "http_" + std::to_string(res.status),
                           "request failed with HTTP status " + std::to_string(res.status), id);
                break;
        }
        return httplib::Server::HandlerResponse::Handled;
    }));

    server_->set_exception_handler(
        [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
            // A guard against bugs, never a control path: handlers return statuses.
            std::string what = "unknown exception";
            try {
                std::rethrow_exception(error);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            log::error("http", "handler threw",
                       {{"request_id", t_scope.request_id},
                        {"method", req.method},
                        {"path", req.path},
                        {"error", what}});
            send_error(res, 500, "internal", "internal error; see the server log for request " +
                                                 t_scope.request_id,
                       t_scope.request_id);
        });

    // httplib calls this after the handler and before it writes the status line.
    server_->set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.has_header("X-Request-Id")) {
            res.set_header("X-Request-Id",
                           t_scope.request_id.empty() ? request_id_from(req) : t_scope.request_id);
        }
        if (finisher_ && t_scope.identity && !t_scope.finished) {
            t_scope.finished = true;
            Status finished =
                finisher_(RequestInfo{t_scope.request_id, req.remote_addr, t_scope.identity});
            if (!finished.ok()) {
                log::error("http", "cannot finish request",
                           {{"request_id", t_scope.request_id}, {"error", finished.message()}});
                send_status(res, finished, t_scope.request_id);
                // Content-Length was set from the handler's body already.
                res.headers.erase("Content-Length");
                res.set_header("Content-Length", std::to_string(res.body.size()));
            }
        }
    });

    server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        double seconds = 0;
        std::string route = "unmatched";
        if (t_scope.active) {
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                    t_scope.start)
                          .count();
            route = t_scope.route;
            in_flight_.fetch_sub(1);
            metrics_.set_in_flight(-1);
        }
        if (finisher_ && t_scope.identity && !t_scope.finished) {
            // Not reached through the post-routing hook (the connection failed before the
            // response): still make the request's records durable, late rather than never.
            Status finished =
                finisher_(RequestInfo{t_scope.request_id, req.remote_addr, t_scope.identity});
            if (!finished.ok()) {
                log::error("http", "cannot finish request",
                           {{"request_id", t_scope.request_id}, {"error", finished.message()}});
            }
        }
        metrics_.observe_request(route, req.method, res.status, seconds);
        if (options_.access_log) {
            log::info("http", "request",
                      {{"request_id", res.get_header_value("X-Request-Id")},
                       {"method", req.method},
                       {"path", req.path},
                       {"route", route},
                       {"status", res.status},
                       {"duration_ms", seconds * 1000.0},
                       {"bytes_in", req.body.size()},
                       {"bytes_out", res.body.size() + t_scope.streamed_bytes},
                       {"remote", req.remote_addr}});
        }
        t_scope = RequestScope{};
    });
}

Status HttpServer::bind() {
    int port = options_.port;
    if (port == 0) {
        port = server_->bind_to_any_port(options_.host);
        if (port < 0) {
            return unavailable("cannot bind " + options_.host + " on any port");
        }
    } else if (!server_->bind_to_port(options_.host, port)) {
        return unavailable("cannot bind " + options_.host + ":" + std::to_string(port) +
                           " (in use, or not an address of this machine)");
    }
    port_.store(port);
    widen_backlog();
    return Status();
}

void HttpServer::widen_backlog() {
    const int fd = socket_fd_.load();
    int accepting = 0;
    socklen_t size = sizeof(accepting);
    // Linux applies a second listen() on a listening socket as a new backlog.
    if (fd >= 0 && ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) == 0 &&
        accepting != 0 && ::listen(fd, SOMAXCONN) != 0) {
        log::warn("http", "cannot widen the listen backlog", {{"error", std::strerror(errno)}});
    }
}

Status HttpServer::serve() {
    SLUICE_CHECK(port_.load() != 0, "serve() before bind()");
    {
        std::lock_guard lock(pool_mutex_);
        pool_ = std::make_unique<ElasticThreadPool>(
            options_.threads, std::max(options_.threads, options_.max_threads));
    }
    const bool served = server_->listen_after_bind();
    {
        std::lock_guard lock(pool_mutex_);
        pool_.reset();  // shut down by httplib already
    }
    if (!served) {
        return unavailable("http server on " + options_.host + ":" +
                           std::to_string(port_.load()) + " stopped with an error");
    }
    return Status();
}

void HttpServer::stop() { server_->stop(); }

ElasticPoolStats HttpServer::thread_stats() const {
    std::lock_guard lock(pool_mutex_);
    return pool_ != nullptr ? pool_->stats() : ElasticPoolStats{};
}

}  // namespace sluice::app
