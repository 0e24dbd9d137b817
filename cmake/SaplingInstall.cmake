# Install rules: bin/sapling, bin/sapling-conformance, lib/libsapling_{sdk,plm,data,training,tools}.so,
# include/sapling (the SDK, pLM and data headers, not their internal/ folders), lib/sapling/plugins (plugins add
# themselves, cmake/SaplingPlugin.cmake), share/sapling/recipes and the CMake package lib/cmake/sapling.
# Plain lib/, not GNUInstallDirs' lib/<multiarch>: the executable finds plugins at ../lib/sapling/plugins.
include(CMakePackageConfigHelpers)
set(SAPLING_CMAKE_INSTALL_DIR lib/cmake/sapling)

# The installed CLI finds the installed core; both keep the link path of a LibTorch outside the system, and the torch
# wheel's lib/ (inside the checkout's .venv, which the link-path rule leaves out as part of the project).
set(_torch_wheel_rpath "")
if(SAPLING_TORCH_SITE)
  set(_torch_wheel_rpath "${SAPLING_TORCH_SITE}/torch/lib")
endif()
set_target_properties(sapling PROPERTIES INSTALL_RPATH "$ORIGIN/../lib;${_torch_wheel_rpath}" INSTALL_RPATH_USE_LINK_PATH ON)
set(_sapling_api_libraries sapling_sdk sapling_plm sapling_data)
set(_sapling_engine_libraries sapling_training sapling_tools)
foreach(_lib ${_sapling_api_libraries} ${_sapling_engine_libraries})
  set_target_properties(${_lib} PROPERTIES INSTALL_RPATH "$ORIGIN;${_torch_wheel_rpath}" INSTALL_RPATH_USE_LINK_PATH ON)
endforeach()
install(TARGETS sapling RUNTIME DESTINATION bin)
# The API libraries and sapling::core (their bundle) are exported for find_package(sapling); the training engine and
# the tools are installed for the CLI and the bundled plugins only, without headers.
install(TARGETS ${_sapling_api_libraries} sapling_core EXPORT saplingTargets LIBRARY DESTINATION lib)
install(TARGETS ${_sapling_engine_libraries} LIBRARY DESTINATION lib)
foreach(_lib sdk plm data)
  install(DIRECTORY core/${_lib}/include/sapling DESTINATION include PATTERN internal EXCLUDE)
endforeach()
# sapling-conformance, exported as sapling::conformance for sapling_add_conformance_test(), and the structures its
# checks read by default (repository files: datasets/sample).
set_target_properties(sapling_conformance PROPERTIES INSTALL_RPATH "$ORIGIN/../lib;${_torch_wheel_rpath}" INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS sapling_conformance EXPORT saplingTargets RUNTIME DESTINATION bin)
install(FILES datasets/sample/bm5/1AY7_l_u.pdb.gz datasets/sample/bm5/1AY7_r_u.pdb.gz DESTINATION share/sapling/conformance/bm5)
install(FILES datasets/sample/psicov/1aba.pdb.gz DESTINATION share/sapling/conformance/psicov)
install(DIRECTORY recipes/ DESTINATION share/sapling/recipes)

# find_package(sapling): sapling::core, its dependencies, and sapling_add_plugin().
install(EXPORT saplingTargets NAMESPACE sapling:: DESTINATION ${SAPLING_CMAKE_INSTALL_DIR})
configure_package_config_file(cmake/saplingConfig.cmake.in ${CMAKE_BINARY_DIR}/saplingConfig.cmake
  INSTALL_DESTINATION ${SAPLING_CMAKE_INSTALL_DIR})
# 0.x: a minor version may change the plugin API, so only the same minor version matches.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/saplingConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/saplingConfig.cmake ${CMAKE_BINARY_DIR}/saplingConfigVersion.cmake
  cmake/SaplingPlugin.cmake DESTINATION ${SAPLING_CMAKE_INSTALL_DIR})
# The data-set manifest and checksum lists: `sapling data list/fetch` of an installed sapling.
install(FILES datasets/manifest.toml DESTINATION share/sapling/datasets)
install(DIRECTORY datasets/checksums DESTINATION share/sapling/datasets)
