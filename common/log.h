#pragma once
// The logging interface every module writes through. A record is a level, a component (the
// module or subsystem, e.g. "http", "engine"), a lower-case message and key=value fields.
// app/ binds it to spdlog (structured JSON lines); until a sink is installed, records at
// warning and above go to stderr so that nothing is lost in tools and tests.
//
// Never log secrets, tokens or prompt text above debug.
//
// Thread safety: all functions are thread-safe. The sink is process-wide: logging is the one
// place where the process holds a replaceable global, as every logging library does; it is set
// once at start-up by app/ and swapped atomically.

#include <atomic>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace sluice::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

constexpr std::string_view level_name(Level level) {
    switch (level) {
        case Level::kDebug: return "debug";
        case Level::kInfo: return "info";
        case Level::kWarn: return "warn";
        case Level::kError: return "error";
    }
    return "unknown";
}

struct Field {
    std::string key;
    std::string value;

    Field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
    Field(std::string k, const char* v) : key(std::move(k)), value(v) {}
    Field(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
    template <typename N, typename = std::enable_if_t<std::is_arithmetic_v<N>>>
    Field(std::string k, N v) : key(std::move(k)), value(std::to_string(v)) {}
};

struct Record {
    Level level;
    std::string_view component;
    std::string_view message;
    const std::vector<Field>& fields;
};

// Receives records at or above its level. Implementations must be thread-safe.
class Sink {
public:
    virtual ~Sink() = default;
    virtual void write(const Record& record) = 0;
    virtual void flush() {}
};

namespace detail {

struct SinkSlot {
    std::mutex mutex;
    std::shared_ptr<Sink> sink;
    std::atomic<int> min_level{static_cast<int>(Level::kWarn)};
};

inline SinkSlot& slot() {
    static SinkSlot instance;
    return instance;
}

inline void write_stderr(const Record& record) {
    std::string line = std::string(level_name(record.level)) + " [" +
                       std::string(record.component) + "] " + std::string(record.message);
    for (const Field& field : record.fields) {
        line += " " + field.key + "=" + field.value;
    }
    line += "\n";
    std::fputs(line.c_str(), stderr);
}

}  // namespace detail

// Installs the process-wide sink and its minimum level. Passing nullptr restores stderr.
inline void set_sink(std::shared_ptr<Sink> sink, Level min_level) {
    auto& slot = detail::slot();
    std::lock_guard lock(slot.mutex);
    slot.sink = std::move(sink);
    slot.min_level.store(static_cast<int>(min_level), std::memory_order_relaxed);
}

inline bool enabled(Level level) {
    return static_cast<int>(level) >=
           detail::slot().min_level.load(std::memory_order_relaxed);
}

inline void write(Level level, std::string_view component, std::string_view message,
                  const std::vector<Field>& fields = {}) {
    if (!enabled(level)) {
        return;
    }
    std::shared_ptr<Sink> sink;
    {
        auto& slot = detail::slot();
        std::lock_guard lock(slot.mutex);
        sink = slot.sink;
    }
    Record record{level, component, message, fields};
    if (sink) {
        sink->write(record);
        return;
    }
    detail::write_stderr(record);
}

inline void flush() {
    std::shared_ptr<Sink> sink;
    {
        auto& slot = detail::slot();
        std::lock_guard lock(slot.mutex);
        sink = slot.sink;
    }
    if (sink) {
        sink->flush();
    }
}

inline void debug(std::string_view component, std::string_view message,
                  const std::vector<Field>& fields = {}) {
    write(Level::kDebug, component, message, fields);
}
inline void info(std::string_view component, std::string_view message,
                 const std::vector<Field>& fields = {}) {
    write(Level::kInfo, component, message, fields);
}
inline void warn(std::string_view component, std::string_view message,
                 const std::vector<Field>& fields = {}) {
    write(Level::kWarn, component, message, fields);
}
inline void error(std::string_view component, std::string_view message,
                  const std::vector<Field>& fields = {}) {
    write(Level::kError, component, message, fields);
}

}  // namespace sluice::log
