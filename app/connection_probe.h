#pragma once
// Whether the client of a request being handled still holds its connection, for handlers that
// work a long time before they answer (a whole completion): a client that hung up gets its work
// cancelled, as a stream's does when a write fails.
//
// httplib hands handlers the request, not its socket, so the probe finds the socket among the
// process's descriptors by the connection's two ends (the peer's address and port, the local
// port), which name one connection while the request is open. A client that closed its end
// shows as end-of-file to a non-blocking peek; bytes waiting (a pipelined request) do not.
//
// Thread safety: use on the thread handling the request, while it is being handled.

#include <httplib.h>

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

namespace sluice::app {

class ConnectionProbe {
public:
    explicit ConnectionProbe(const httplib::Request& request);

    // True once the peer closed or reset the connection. False when unknown (no socket found).
    bool client_gone() const;
    bool found() const { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// For a handler that works on its own thread until it answers (an agent run): probes the
// connection twice a second from a thread of its own, and requests stop_token()'s stop once the
// client has hung up. The handler must not read the request's socket meanwhile (it does not:
// the request has been read). Destroy it before the handler returns.
class HangUpWatch {
public:
    explicit HangUpWatch(const httplib::Request& request);
    ~HangUpWatch();
    HangUpWatch(const HangUpWatch&) = delete;
    HangUpWatch& operator=(const HangUpWatch&) = delete;

    std::stop_token stop_token() const { return gone_.get_token(); }

private:
    ConnectionProbe probe_;
    std::stop_source gone_;
    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::jthread watcher_;  // last: started once the rest exists, joined first
};

}  // namespace sluice::app
