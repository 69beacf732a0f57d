#pragma once
// Result<T>: a value or a non-ok Status, shaped like std::expected<T, Status>.
//
//   Result<Config> r = load_config(path);
//   if (!r) return r.status();
//   use(*r);
//
// Accessing the value of a failed Result is a bug and aborts (SLUICE_CHECK).
// Thread safety: a value type; as safe as T.

#include <optional>
#include <type_traits>
#include <utility>

#include "common/check.h"
#include "common/status.h"

namespace sluice {

template <typename T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<std::decay_t<T>, Status>, "use Status directly");

public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
        SLUICE_CHECK(!status_.ok(), "Result constructed from an ok Status without a value");
    }

    bool ok() const { return value_.has_value(); }
    explicit operator bool() const { return ok(); }

    // The failure; an ok Status when the Result holds a value.
    const Status& status() const { return status_; }

    T& value() & {
        SLUICE_CHECK(ok(), "value() of a failed Result: " + status_.to_string());
        return *value_;
    }
    const T& value() const& {
        SLUICE_CHECK(ok(), "value() of a failed Result: " + status_.to_string());
        return *value_;
    }
    T&& value() && {
        SLUICE_CHECK(ok(), "value() of a failed Result: " + status_.to_string());
        return std::move(*value_);
    }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    template <typename U>
    T value_or(U&& fallback) const& {
        return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
    }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace sluice

// Evaluates a Result expression; on failure returns its Status, else moves the value into `lhs`.
//   SLUICE_ASSIGN_OR_RETURN(auto config, load_config(path));
#define SLUICE_CONCAT_INNER_(a, b) a##b
#define SLUICE_CONCAT_(a, b) SLUICE_CONCAT_INNER_(a, b)
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr) \
    SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), lhs, expr)
#define SLUICE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
    auto tmp = (expr);                                \
    if (!tmp.ok()) {                                  \
        return tmp.status();                          \
    }                                                 \
    lhs = std::move(tmp).value()
