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

}  // namespace sluice::app
