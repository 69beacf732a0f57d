# Build identity for `sluice version`: the project version, the git revision (read at configure
# time; scripts/run and scripts/test configure on every call, so it stays current) and build type.
set(SLUICE_GIT_REVISION "unknown")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short=12 HEAD
                  WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
                  OUTPUT_VARIABLE git_revision OUTPUT_STRIP_TRAILING_WHITESPACE
                  ERROR_QUIET RESULT_VARIABLE git_result)
  if(git_result EQUAL 0 AND git_revision)
    set(SLUICE_GIT_REVISION "${git_revision}")
    execute_process(COMMAND "${GIT_EXECUTABLE}" status --porcelain --untracked-files=no
                    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
                    OUTPUT_VARIABLE git_dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(git_dirty)
      string(APPEND SLUICE_GIT_REVISION "-dirty")
    endif()
  endif()
endif()

# Shared test data (../shared beside the checkout); tests that need it skip with a message when absent.
get_filename_component(SLUICE_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" ABSOLUTE)
