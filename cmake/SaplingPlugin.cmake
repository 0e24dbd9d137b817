# sapling_add_plugin(NAME SOURCES...): builds plugins/<NAME> into build/plugins/sapling_<NAME>.so
# with hidden visibility, linked against libsapling_core (which carries LibTorch and the interfaces).
# Usable from an out-of-tree plugin too: include this file and link to sapling::core.
function(sapling_add_plugin NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBRARIES" ${ARGN})
  set(target sapling_plugin_${NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    OUTPUT_NAME sapling_${NAME}
    LIBRARY_OUTPUT_DIRECTORY ${SAPLING_PLUGIN_OUTPUT_DIR}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${target} PRIVATE sapling::core ${ARG_LIBRARIES})
  target_precompile_headers(${target} PRIVATE <torch/torch.h>)
  set_property(GLOBAL APPEND PROPERTY SAPLING_PLUGIN_TARGETS ${target})
endfunction()
