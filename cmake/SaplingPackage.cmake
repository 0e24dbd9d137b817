# `cpack -G DEB` (run in the build folder after building): a Debian package of the install tree under /usr.
# Its Depends come from the libraries the binaries link (dpkg-shlibdeps). It recommends OpenBLAS (Debian's
# LibTorch is ~30x slower on the reference BLAS), gnuplot (bench plots) and what building plugins against
# it needs: the -dev packages of sapling's public dependencies and a toolchain.
set(CPACK_PACKAGE_NAME sapling)
set(CPACK_PACKAGE_VENDOR sapling)
set(CPACK_PACKAGE_CONTACT "sapling maintainers <sapling@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Structure-aligned protein language models: LibTorch CLI, plugins, TOML recipes")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The libsapling_*.so libraries are in the package itself, not a dependency: dpkg-shlibdeps looks for it here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR})
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS
  "libopenblas0-openmp, gnuplot-nox, libtorch-dev, libtomlplusplus-dev, nlohmann-json3-dev, cmake, ninja-build, g++")
include(CPack)
