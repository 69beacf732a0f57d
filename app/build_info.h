#pragma once
// What this binary is: version, git revision, build type, compiled-in accelerators.

#include <string>

namespace sluice::app {

struct BuildInfo {
    std::string version;
    std::string git_revision;
    std::string build_type;
    bool cuda = false;
    bool nccl = false;
};

BuildInfo build_info();

}  // namespace sluice::app
