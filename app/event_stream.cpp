#include "app/event_stream.h"

#include "agents/trace.h"
#include "app/http_server.h"

namespace sluice::app {

namespace {

// Idle time after which a comment is written (see the header).
constexpr auto kKeepAlive = std::chrono::seconds(1);

}  // namespace

EventStream::~EventStream() {
    stop_.request_stop();  // the client is gone or the response is over; the jthread then joins
}

void EventStream::start(std::function<void()> work) { worker_ = std::jthread(std::move(work)); }

void EventStream::push(const std::string& name, const nlohmann::json& data) {
    std::string chunk = "event: " + name + "\ndata: " + agents::dump_safe(data) + "\n\n";
    std::lock_guard lock(mutex_);
    chunks_.push_back(std::move(chunk));
    ready_.notify_one();
}

void EventStream::push_data(const nlohmann::json& data) {
    std::string chunk = "data: " + agents::dump_safe(data) + "\n\n";
    std::lock_guard lock(mutex_);
    chunks_.push_back(std::move(chunk));
    ready_.notify_one();
}

void EventStream::close(bool done_marker) {
    std::lock_guard lock(mutex_);
    if (done_marker) {
        chunks_.push_back("data: [DONE]\n\n");
    }
    closed_ = true;
    ready_.notify_one();
}

bool EventStream::pump(httplib::DataSink& sink, std::chrono::milliseconds wait) {
    std::deque<std::string> out;
    bool closed = false;
    {
        std::unique_lock lock(mutex_);
        ready_.wait_for(lock, wait, [this] { return !chunks_.empty() || closed_; });
        out.swap(chunks_);
        closed = closed_;
    }
    if (out.empty() && !closed && std::chrono::steady_clock::now() - last_write_ > kKeepAlive) {
        out.push_back(": keep-alive\n\n");
    }
    for (const std::string& chunk : out) {
        if (!sink.is_writable() || !sink.write(chunk.data(), chunk.size())) {
            stop_.request_stop();
            return false;
        }
        count_streamed_bytes(chunk.size());
        last_write_ = std::chrono::steady_clock::now();
    }
    if (closed) {
        sink.done();
    }
    return true;
}

void EventStream::respond(std::shared_ptr<EventStream> stream, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream", [stream](size_t, httplib::DataSink& sink) {
            return stream->pump(sink, std::chrono::milliseconds(100));
        });
}

}  // namespace sluice::app
