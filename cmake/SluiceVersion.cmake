# Build identity for `sluice version`: the project version and build type (compile definitions of
# app/build_info.cpp) and the git revision, which is read at build time, not at configure time:
# a build after a commit must not report the revision it was configured at. The target
# sluice_git_revision runs cmake/SluiceGitRevision.cmake on every build; it rewrites
# generated/sluice_git_revision.h only when the revision changed, so an unchanged revision
# recompiles nothing and a new one recompiles build_info.cpp alone.
find_package(Git QUIET)
set(SLUICE_GIT_REVISION_HEADER "${CMAKE_BINARY_DIR}/generated/sluice_git_revision.h")
add_custom_target(sluice_git_revision
  COMMAND "${CMAKE_COMMAND}" "-DGIT_EXECUTABLE=${GIT_EXECUTABLE}"
          "-DSOURCE_DIR=${CMAKE_SOURCE_DIR}" "-DOUTPUT=${SLUICE_GIT_REVISION_HEADER}"
          -P "${CMAKE_SOURCE_DIR}/cmake/SluiceGitRevision.cmake"
  BYPRODUCTS "${SLUICE_GIT_REVISION_HEADER}"
  COMMENT "Reading the git revision"
  VERBATIM)

# Shared test data (../shared beside the checkout); tests that need it skip with a message when absent.
get_filename_component(SLUICE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" ABSOLUTE)
