#pragma once
// EventStream: server-sent events produced by a worker thread and written by httplib's chunked
// content provider. The handler starts the work (which push()es events and finally close()s),
// hands the stream to the provider, and returns; the provider pumps what is ready.
//
// The stream owns its worker: destroying the stream (httplib drops the provider when the
// response is done or the client is gone) requests the worker's stop and joins it, so no work
// outlives its request's state. The worker reads stop_token() to notice a client that hung up
// and end early (an agent cancels its model turn in flight); a failed write requests the stop at
// once. An SSE comment is written after a second without events, because only a write reveals a
// vanished client (and it keeps proxies from timing the stream out).
//
// Thread safety: push(), push_data() and close() from the worker, pump() from the HTTP thread,
// stop_token() from either.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace sluice::app {

class EventStream {
public:
    ~EventStream();

    // Runs `work` on the stream's own thread; `work` must end by calling close(). It may use
    // the stream through a plain pointer (the stream outlives it) but must not own it.
    void start(std::function<void()> work);
    // "event: <name>\ndata: <json>\n\n".
    void push(const std::string& name, const nlohmann::json& data);
    // "data: <json>\n\n": an unnamed event, the shape of OpenAI's streamed chunks.
    void push_data(const nlohmann::json& data);
    // Requested when the client is gone (a write failed) or the stream is being destroyed.
    std::stop_token stop_token() const { return stop_.get_token(); }
    // Ends the stream after the events pushed so far (with "data: [DONE]" when `done_marker`).
    void close(bool done_marker = false);

    // Writes what is ready, waiting up to `wait`; calls sink.done() once the stream has ended.
    // False when the client is gone.
    bool pump(httplib::DataSink& sink, std::chrono::milliseconds wait);

    // Serves `stream` as the response (text/event-stream).
    static void respond(std::shared_ptr<EventStream> stream, httplib::Response& res);

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<std::string> chunks_;  // guarded by mutex_
    bool closed_ = false;             // guarded by mutex_
    std::chrono::steady_clock::time_point last_write_ = std::chrono::steady_clock::now();  // pump
    std::stop_source stop_;
    std::jthread worker_;  // last: destroyed (joined) first
};

}  // namespace sluice::app
