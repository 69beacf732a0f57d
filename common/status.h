#pragma once
// Status: the outcome of an operation that can fail for reasons outside the program's control
// (bad input, missing files, full disks, denied access). Bugs are not statuses: see check.h.
//
// A Status is a code and a lower-case message that names the thing and gives expected and found
// values. Codes map one-to-one to HTTP statuses in app/ (see app/http_errors.h).
//
// Thread safety: immutable value type.

#include <string>
#include <string_view>
#include <utility>

namespace sluice {

enum class StatusCode {
    kOk = 0,
    kInvalidArgument,    // the caller's input is malformed or out of range (HTTP 400)
    kUnauthenticated,    // no or bad credentials (401)
    kPermissionDenied,   // authenticated but not allowed (403)
    kNotFound,           // the named thing does not exist (404)
    kAlreadyExists,      // creating something that exists (409)
    kFailedPrecondition, // the system is not in a state to do this (409)
    kAborted,            // a concurrent change won; retry may succeed (409)
    kPayloadTooLarge,    // input larger than a configured limit (413)
    kResourceExhausted,  // a quota, rate limit or memory budget is spent (429)
    kCancelled,          // the caller went away (499)
    kInternal,           // an invariant the program relies on does not hold (500)
    kNotSupported,       // a valid request this build or configuration cannot serve (501)
    kUnavailable,        // not ready or shutting down; retry later (503)
    kDeadlineExceeded,   // ran out of time (504)
    kDataLoss,           // stored data is corrupt or truncated (500)
    kIoError,            // the operating system refused a read or write (500)
};

// Stable lower-case name of a code, e.g. "invalid_argument"; used in logs and error envelopes.
constexpr std::string_view status_code_name(StatusCode code) {
    switch (code) {
        case StatusCode::kOk: return "ok";
        case StatusCode::kInvalidArgument: return "invalid_argument";
        case StatusCode::kUnauthenticated: return "unauthenticated";
        case StatusCode::kPermissionDenied: return "permission_denied";
        case StatusCode::kNotFound: return "not_found";
        case StatusCode::kAlreadyExists: return "already_exists";
        case StatusCode::kFailedPrecondition: return "failed_precondition";
        case StatusCode::kAborted: return "aborted";
        case StatusCode::kPayloadTooLarge: return "payload_too_large";
        case StatusCode::kResourceExhausted: return "resource_exhausted";
        case StatusCode::kCancelled: return "cancelled";
        case StatusCode::kInternal: return "internal";
        case StatusCode::kNotSupported: return "not_supported";
        case StatusCode::kUnavailable: return "unavailable";
        case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
        case StatusCode::kDataLoss: return "data_loss";
        case StatusCode::kIoError: return "io_error";
    }
    return "unknown";
}

class [[nodiscard]] Status {
public:
    Status() = default;  // ok
    Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status ok_status() { return Status(); }

    bool ok() const { return code_ == StatusCode::kOk; }
    StatusCode code() const { return code_; }
    const std::string& message() const { return message_; }

    // "invalid_argument: tensor 'wqkv': shape [..], expected [..]"
    std::string to_string() const {
        if (ok()) {
            return "ok";
        }
        return std::string(status_code_name(code_)) + ": " + message_;
    }

    // Prefixes context to the message, keeping the code: "loading shard 3: " + message.
    Status with_context(std::string_view context) const {
        if (ok()) {
            return *this;
        }
        return Status(code_, std::string(context) + ": " + message_);
    }

    friend bool operator==(const Status& a, const Status& b) {
        return a.code_ == b.code_ && a.message_ == b.message_;
    }

private:
    StatusCode code_ = StatusCode::kOk;
    std::string message_;
};

inline Status invalid_argument(std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status not_found(std::string message) {
    return Status(StatusCode::kNotFound, std::move(message));
}
inline Status failed_precondition(std::string message) {
    return Status(StatusCode::kFailedPrecondition, std::move(message));
}
inline Status internal_error(std::string message) {
    return Status(StatusCode::kInternal, std::move(message));
}
inline Status io_error(std::string message) {
    return Status(StatusCode::kIoError, std::move(message));
}
inline Status unavailable(std::string message) {
    return Status(StatusCode::kUnavailable, std::move(message));
}
inline Status data_loss(std::string message) {
    return Status(StatusCode::kDataLoss, std::move(message));
}
inline Status not_supported(std::string message) {
    return Status(StatusCode::kNotSupported, std::move(message));
}

}  // namespace sluice

// Returns the status from the enclosing function when it is not ok.
#define SLUICE_RETURN_IF_ERROR(expr)                  \
    do {                                              \
        ::sluice::Status sluice_status_ = (expr);     \
        if (!sluice_status_.ok()) {                   \
            return sluice_status_;                    \
        }                                             \
    } while (false)
