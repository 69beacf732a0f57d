#pragma once
// A child process for integration tests: started with argv and extra environment, its stderr
// read line by line through a pipe, signalled, and waited for with a timeout.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice::testing {

class ChildProcess {
public:
    ChildProcess(const std::vector<std::string>& argv,
                 const std::map<std::string, std::string>& environment = {}) {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
            return;
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(pipe_fds[1], STDERR_FILENO);
            int devnull = ::open("/dev/null", O_WRONLY);
            ::dup2(devnull, STDOUT_FILENO);
            for (const auto& [name, value] : environment) {
                ::setenv(name.c_str(), value.c_str(), 1);
            }
            std::vector<char*> args;
            for (const auto& arg : argv) {
                args.push_back(const_cast<char*>(arg.c_str()));
            }
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        ::close(pipe_fds[1]);
        stderr_fd_ = pipe_fds[0];
    }

    ~ChildProcess() {
        if (pid_ > 0 && !exit_code_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (stderr_fd_ >= 0) {
            ::close(stderr_fd_);
        }
    }

    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    bool started() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }

    // The next stderr line, or nullopt on end of file or timeout.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (true) {
            auto newline = buffer_.find('\n');
            if (newline != std::string::npos) {
                std::string line = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                all_output_ += line + "\n";
                return line;
            }
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return std::nullopt;
            }
            pollfd pfd{stderr_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
                return std::nullopt;
            }
            char chunk[4096];
            ssize_t n = ::read(stderr_fd_, chunk, sizeof(chunk));
            if (n <= 0) {
                if (!buffer_.empty()) {
                    std::string line = buffer_;
                    buffer_.clear();
                    all_output_ += line + "\n";
                    return line;
                }
                return std::nullopt;
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    // Reads stderr lines until one contains `needle`; returns that line.
    std::optional<std::string> wait_for_line(const std::string& needle,
                                             std::chrono::milliseconds timeout) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            auto line = read_line(left);
            if (!line) {
                return std::nullopt;
            }
            if (line->find(needle) != std::string::npos) {
                return line;
            }
        }
        return std::nullopt;
    }

    void signal(int number) { ::kill(pid_, number); }

    // The exit code (128 + signal for a signalled child), or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        if (exit_code_) {
            return exit_code_;
        }
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            pid_t done = ::waitpid(pid_, &status, WNOHANG);
            if (done == pid_) {
                exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                return exit_code_;
            }
            // Keep draining stderr so that the child never blocks on a full pipe.
            (void)read_line(std::chrono::milliseconds(20));
        }
        return std::nullopt;
    }

    // Everything read from stderr so far, plus what is left in the pipe.
    std::string output() {
        while (read_line(std::chrono::milliseconds(50))) {
        }
        return all_output_;
    }

private:
    pid_t pid_ = -1;
    int stderr_fd_ = -1;
    std::string buffer_;
    std::string all_output_;
    std::optional<int> exit_code_;
};

}  // namespace sluice::testing
