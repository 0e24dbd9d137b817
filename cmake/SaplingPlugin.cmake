# sapling_add_plugin(NAME SOURCES... [LIBRARIES...]): builds the plugin library sapling_<NAME>.so with hidden
# visibility, linked against sapling::core (which carries LibTorch and the interfaces), and installs it.
# In sapling's tree it builds into build/plugins/; with an installed sapling (find_package(sapling), which
# includes this file) it builds into the plugin's own build folder.

# Where `cmake --install` puts plugins, relative to the prefix: an installed bin/sapling looks in
# ../lib/sapling/plugins (default_plugin_dir() in core/sdk/src/plugin_loader.cpp).
set(SAPLING_PLUGIN_INSTALL_DIR lib/sapling/plugins)

# sapling_precompile_torch(TARGET): a precompiled <torch/torch.h> for a plugin's target (or its static helper
# library, built with the plugin's flags: PIC, hidden visibility). In sapling's tree all of them reuse one,
# built once (about 45 s of a core each on the 2-core CI machine, nine times over otherwise); a plugin built
# against an installed sapling gets its own. GCC checks a reused header against the flags and falls back to
# parsing the header where they differ, so reuse can cost speed, never correctness.
function(sapling_precompile_torch TARGET)
  if(NOT SAPLING_PLUGIN_OUTPUT_DIR)
    target_precompile_headers(${TARGET} PRIVATE <torch/torch.h>)
    return()
  endif()
  if(NOT TARGET sapling_plugin_pch)
    set(_source ${CMAKE_BINARY_DIR}/sapling_plugin_pch.cpp)
    file(WRITE ${_source} "// Compiled only for the precompiled header the in-tree plugins share.\n")
    add_library(sapling_plugin_pch OBJECT ${_source})
    set_target_properties(sapling_plugin_pch PROPERTIES
      POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
    target_link_libraries(sapling_plugin_pch PRIVATE sapling::core)
    target_precompile_headers(sapling_plugin_pch PRIVATE <torch/torch.h>)
  endif()
  target_precompile_headers(${TARGET} REUSE_FROM sapling_plugin_pch)
endfunction()

# COMPILE_OPTIONS: flags of this plugin's own sources (e.g. -ffp-contract=off); such a plugin precompiles its
# own header, since one precompiled under other flags is skipped by GCC and may be refused by clang.
function(sapling_add_plugin NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES;COMPILE_OPTIONS" ${ARGN})
  set(target sapling_plugin_${NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME sapling_${NAME}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    # Installed beside the core: <prefix>/lib/sapling/plugins -> <prefix>/lib. The link path adds a core
    # (or LibTorch) installed elsewhere.
    INSTALL_RPATH "$ORIGIN/../.."
    INSTALL_RPATH_USE_LINK_PATH ON)
  if(SAPLING_PLUGIN_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${SAPLING_PLUGIN_OUTPUT_DIR})
  endif()
  target_link_libraries(${target} PRIVATE sapling::core ${ARG_LIBRARIES})
  # A precompiled LibTorch header of its own pays off from the second translation unit; for one it doubles the
  # work. A unity build (CMAKE_UNITY_BUILD) compiles up to its batch size of sources as one unit.
  list(LENGTH ARG_SOURCES _units)
  if(CMAKE_UNITY_BUILD)
    set(_batch 8)  # CMake's default UNITY_BUILD_BATCH_SIZE
    if(CMAKE_UNITY_BUILD_BATCH_SIZE)
      set(_batch ${CMAKE_UNITY_BUILD_BATCH_SIZE})
    endif()
    math(EXPR _units "(${_units} + ${_batch} - 1) / ${_batch}")
  endif()
  if(ARG_COMPILE_OPTIONS)
    target_compile_options(${target} PRIVATE ${ARG_COMPILE_OPTIONS})
    if(_units GREATER 1)
      target_precompile_headers(${target} PRIVATE <torch/torch.h>)
    endif()
  elseif(SAPLING_PLUGIN_OUTPUT_DIR OR _units GREATER 1)
    sapling_precompile_torch(${target})  # in sapling's tree one shared header, cheap to reuse for one unit
  endif()
  set_property(GLOBAL APPEND PROPERTY SAPLING_PLUGIN_TARGETS ${target})
  # The template itself stays out of installs (it is a starting point, not a component); copies are renamed.
  if(NOT NAME STREQUAL "template")
    install(TARGETS ${target} LIBRARY DESTINATION ${SAPLING_PLUGIN_INSTALL_DIR})
  endif()
endfunction()

# sapling_add_conformance_test(TARGET [EXAMPLES FILE] [NAME TEST]): a ctest (default name conformance:<plugin>)
# that runs sapling-conformance on the plugin library TARGET builds: every check that applies to each component it
# registers (CONTRIBUTING.md, "Conformance"). EXAMPLES defaults to conformance.toml in the plugin's source folder,
# where it has one. Needs enable_testing() in the calling project.
function(sapling_add_conformance_test TARGET)
  cmake_parse_arguments(ARG "" "EXAMPLES;NAME" "" ${ARGN})
  get_target_property(_source_dir ${TARGET} SOURCE_DIR)
  if(NOT ARG_EXAMPLES AND EXISTS ${_source_dir}/conformance.toml)
    set(ARG_EXAMPLES ${_source_dir}/conformance.toml)
  endif()
  if(NOT ARG_NAME)
    get_target_property(_output_name ${TARGET} OUTPUT_NAME)
    string(REGEX REPLACE "^sapling_" "" _plugin "${_output_name}")
    set(ARG_NAME conformance:${_plugin})
  endif()
  set(_command $<TARGET_FILE:sapling::conformance> $<TARGET_FILE:${TARGET}>)
  if(ARG_EXAMPLES)
    list(APPEND _command --examples ${ARG_EXAMPLES})
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${_command})
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT 900)
endfunction()
