#include "app/logging.h"

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "common/log.h"

namespace sluice::app {
namespace {

class SpdlogSink final : public log::Sink {
public:
    SpdlogSink(std::shared_ptr<spdlog::logger> logger, bool json)
        : logger_(std::move(logger)), json_(json) {}

    void write(const log::Record& record) override {
        spdlog::level::level_enum level = spdlog_level(record.level);
        if (json_) {
            // The pattern writes {"ts":..,"level":..,; the rest of the object is built here so
            // that every value is escaped by the JSON library.
            nlohmann::json body = nlohmann::json::object();
            body["component"] = std::string(record.component);
            body["msg"] = std::string(record.message);
            for (const auto& field : record.fields) {
                body[field.key] = field.value;
            }
            std::string text = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            logger_->log(level, "{}", std::string_view(text).substr(1));
            return;
        }
        std::string text;
        text.append("[").append(record.component).append("] ").append(record.message);
        for (const auto& field : record.fields) {
            text.append(" ").append(field.key).append("=").append(field.value);
        }
        logger_->log(level, "{}", text);
    }

    void flush() override { logger_->flush(); }

private:
    static spdlog::level::level_enum spdlog_level(log::Level level) {
        switch (level) {
            case log::Level::kDebug: return spdlog::level::debug;
            case log::Level::kInfo: return spdlog::level::info;
            case log::Level::kWarn: return spdlog::level::warn;
            case log::Level::kError: return spdlog::level::err;
        }
        return spdlog::level::info;
    }

    std::shared_ptr<spdlog::logger> logger_;
    bool json_;
};

log::Level parse_level(const std::string& name) {
    if (name == "debug") {
        return log::Level::kDebug;
    }
    if (name == "warn") {
        return log::Level::kWarn;
    }
    if (name == "error") {
        return log::Level::kError;
    }
    return log::Level::kInfo;
}

}  // namespace

Status install_logging(const LogConfig& config) {
    bool json = config.format == "json";
    auto logger = std::make_shared<spdlog::logger>(
        "sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_level(spdlog::level::trace);  // filtering happens in common/log.h
    logger->flush_on(spdlog::level::warn);
    if (json) {
        logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v)",
                            spdlog::pattern_time_type::utc);
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
    }
    log::set_sink(std::make_shared<SpdlogSink>(std::move(logger), json),
                  parse_level(config.level));
    return Status();
}

}  // namespace sluice::app
