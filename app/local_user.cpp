#include "app/local_user.h"

#include <unistd.h>

#include <cstdlib>

namespace sluice::app {

std::string local_user() {
    const char* user = std::getenv("USER");
    return std::string("local:") + (user != nullptr ? user : std::to_string(::getuid()));
}

}  // namespace sluice::app
