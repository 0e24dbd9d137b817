# sapling_add_plugin(NAME SOURCES... [LIBRARIES...]): builds the plugin library sapling_<NAME>.so with hidden
# visibility, linked against sapling::core (which carries LibTorch and the interfaces), and installs it.
# In sapling's tree it builds into build/plugins/; with an installed sapling (find_package(sapling), which
# includes this file) it builds into the plugin's own build folder.

# Where `cmake --install` puts plugins, relative to the prefix: an installed bin/sapling looks in
# ../lib/sapling/plugins (default_plugin_dir() in core/src/plugin_loader.cpp).
set(SAPLING_PLUGIN_INSTALL_DIR lib/sapling/plugins)

function(sapling_add_plugin NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
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
  # A precompiled LibTorch header pays off from the second translation unit; for one it doubles the work.
  list(LENGTH ARG_SOURCES _count)
  if(_count GREATER 1)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  endif()
  set_property(GLOBAL APPEND PROPERTY SAPLING_PLUGIN_TARGETS ${target})
  # The template itself stays out of installs (it is a starting point, not a component); copies are renamed.
  if(NOT NAME STREQUAL "template")
    install(TARGETS ${target} LIBRARY DESTINATION ${SAPLING_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
