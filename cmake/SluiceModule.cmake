# sluice_module(): one CMake library per top-level folder, with walls.
#
# A module's public contract is its top-level headers (<module>/*.h). Other modules and the app see
# only those, through a generated include tree that holds one link per public header:
#   build/include/public/<module>/<module>/<header>.h
# The module's own sources (and its tests) also see its private parts (detail/, cpu/, cuda/)
# through build/include/private/<module>/<module> -> <module>/. Every include is written from the
# repository root ("retrieval/index.h"), so including a module that is not a declared dependency,
# or another module's detail/ header, fails to compile with "file not found".

set(SLUICE_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wformat=2 -Werror)

if(SLUICE_SANITIZE)
  # float-cast-overflow is not part of "undefined" in GCC: a double out of an integer's range
  # converted to it is undefined all the same.
  add_compile_options(-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined,float-cast-overflow)
  add_link_options(-fsanitize=address,undefined,float-cast-overflow)
  # GCC 12 reports -Wmaybe-uninitialized inside libstdc++ (std::regex, std::function) under ASan
  # instrumentation; those are false positives in system headers, not in our code.
  list(APPEND SLUICE_WARNINGS -Wno-maybe-uninitialized)
endif()

# Applies the project's warning set to C++ sources of a target (not to CUDA device code).
function(sluice_target_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${SLUICE_WARNINGS}>)
endfunction()

# Optional third argument: folders of the module whose top-level headers are public too
# (agents/evaluation): a concern big enough for its own folder that other modules still use.
function(sluice_public_headers module out_dir)
  set(subdirs "${ARGN}")
  set(dir "${CMAKE_SOURCE_DIR}/${module}")
  set(public_root "${CMAKE_BINARY_DIR}/include/public/${module}")
  file(REMOVE_RECURSE "${public_root}")
  file(MAKE_DIRECTORY "${public_root}/${module}")
  file(GLOB headers CONFIGURE_DEPENDS "${dir}/*.h")
  foreach(header IN LISTS headers)
    get_filename_component(header_name "${header}" NAME)
    file(CREATE_LINK "${header}" "${public_root}/${module}/${header_name}" SYMBOLIC)
  endforeach()
  foreach(subdir IN LISTS subdirs)
    file(MAKE_DIRECTORY "${public_root}/${module}/${subdir}")
    file(GLOB sub_headers CONFIGURE_DEPENDS "${dir}/${subdir}/*.h")
    foreach(header IN LISTS sub_headers)
      get_filename_component(header_name "${header}" NAME)
      file(CREATE_LINK "${header}" "${public_root}/${module}/${subdir}/${header_name}" SYMBOLIC)
    endforeach()
  endforeach()
  set(${out_dir} "${public_root}" PARENT_SCOPE)
endfunction()

function(sluice_private_headers module out_dir)
  set(private_root "${CMAKE_BINARY_DIR}/include/private/${module}")
  file(MAKE_DIRECTORY "${private_root}")
  if(NOT EXISTS "${private_root}/${module}")
    file(CREATE_LINK "${CMAKE_SOURCE_DIR}/${module}" "${private_root}/${module}" SYMBOLIC)
  endif()
  set(${out_dir} "${private_root}" PARENT_SCOPE)
endfunction()

# sluice_module(NAME <module> [DEPS <modules>] [LIBS <targets>] [PRIVATE_LIBS <targets>]
#               [EXCLUDE <relative source paths>] [PUBLIC_SUBDIRS <folders>])
# Creates target sluice_<module> from <module>/**/*.cpp (and **/*.cu when CUDA is on; cuda/
# folders are skipped otherwise). DEPS are other Sluice modules; LIBS are third-party targets
# the public headers expose; PRIVATE_LIBS are used by the implementation only.
function(sluice_module)
  cmake_parse_arguments(ARG "" "NAME" "DEPS;LIBS;PRIVATE_LIBS;EXCLUDE;PUBLIC_SUBDIRS" ${ARGN})
  set(module ${ARG_NAME})
  set(target sluice_${module})
  set(dir "${CMAKE_SOURCE_DIR}/${module}")

  sluice_public_headers(${module} public_dir "${ARG_PUBLIC_SUBDIRS}")
  sluice_private_headers(${module} private_dir)

  file(GLOB_RECURSE sources CONFIGURE_DEPENDS "${dir}/*.cpp")
  if(SLUICE_HAVE_CUDA)
    file(GLOB_RECURSE cuda_sources CONFIGURE_DEPENDS "${dir}/*.cu")
    list(APPEND sources ${cuda_sources})
  else()
    list(FILTER sources EXCLUDE REGEX "/cuda/")
  endif()
  foreach(excluded IN LISTS ARG_EXCLUDE)
    list(REMOVE_ITEM sources "${dir}/${excluded}")
  endforeach()

  set(dep_targets)
  foreach(dep IN LISTS ARG_DEPS)
    list(APPEND dep_targets sluice_${dep})
  endforeach()

  if(sources)
    add_library(${target} STATIC ${sources})
    target_include_directories(${target} PUBLIC "${public_dir}" PRIVATE "${private_dir}")
    target_link_libraries(${target} PUBLIC sluice_common ${dep_targets} ${ARG_LIBS}
                                     PRIVATE ${ARG_PRIVATE_LIBS})
    sluice_target_warnings(${target})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  else()
    # A module whose implementation has not landed yet still has its place in the graph.
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE "${public_dir}")
    target_link_libraries(${target} INTERFACE sluice_common ${dep_targets} ${ARG_LIBS})
  endif()
  set_property(GLOBAL APPEND PROPERTY SLUICE_MODULES ${module})
  set_property(GLOBAL PROPERTY SLUICE_MODULE_PRIVATE_DIR_${module} "${private_dir}")
endfunction()

# sluice_module_tests(<module> [LIBS <targets>] [LABELS <labels>])
# One doctest executable per module from tests/<module>/*_test.cpp, registered with ctest under
# the label <module>. Tests see the module's private headers so that internals can be tested.
function(sluice_module_tests module)
  cmake_parse_arguments(ARG "" "" "LIBS;LABELS" ${ARGN})
  file(GLOB test_sources CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/${module}/*_test.cpp")
  if(NOT test_sources)
    return()
  endif()
  set(target ${module}_tests)
  get_property(private_dir GLOBAL PROPERTY SLUICE_MODULE_PRIVATE_DIR_${module})
  add_executable(${target} ${test_sources} "${CMAKE_CURRENT_SOURCE_DIR}/doctest_main.cpp")
  target_include_directories(${target} PRIVATE "${private_dir}" "${CMAKE_CURRENT_SOURCE_DIR}/support")
  target_link_libraries(${target} PRIVATE sluice_${module} doctest::doctest ${ARG_LIBS})
  target_compile_definitions(${target} PRIVATE
    SLUICE_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    SLUICE_BINARY_DIR="${CMAKE_BINARY_DIR}")
  sluice_target_warnings(${target})
  add_test(NAME ${target} COMMAND ${target} --force-colors=false)
  set_tests_properties(${target} PROPERTIES LABELS "${module};${ARG_LABELS}"
    ENVIRONMENT "SLUICE_SHARED_DIR=${SLUICE_SHARED_DIR}")
endfunction()
