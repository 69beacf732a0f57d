#include "app/build_info.h"

#include "inference/devices.h"
#include "sluice_git_revision.h"

namespace sluice::app {

BuildInfo build_info() {
    inference::BuildFeatures features = inference::build_features();
    return BuildInfo{.version = SLUICE_VERSION,
                     .git_revision = SLUICE_GIT_REVISION,
                     .build_type = SLUICE_BUILD_TYPE,
                     .cuda = features.cuda,
                     .nccl = features.nccl};
}

}  // namespace sluice::app
