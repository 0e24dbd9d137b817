# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: one clang build in build-sanitize/ with AddressSanitizer,
# UndefinedBehaviorSanitizer and libFuzzer coverage (cmake -DSAPLING_FUZZ=ON), so the sanitized test suite and
# the fuzz targets share every compiled object (CI builds the instrumented core once, not twice). It links Debian's
# CPU LibTorch 1.13 (-DSAPLING_LIBTORCH=system; install-deps.sh --sanitizers installs it): ASan and the CUDA
# libraries need care (ASan's protect_shadow_gap=0 once CUDA initialises; the wheel's own std::filesystem copy), the
# instrumented code is sapling's either way, and so CI also keeps the 1.13 option compiling (docs/reliability.md).
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
# detect_leaks=0: LibTorch (not instrumented) and its thread pools keep allocations alive past exit, and Boost.DLL
# plugins are never unloaded by design; LeakSanitizer would report those on every executable, including the
# catch_discover_tests run during the build. Heap overflows, use-after-free and UB are what this build is for.
# detect_odr_violation=0: the core and the plugins instantiate the same inline symbols from the same headers.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:detect_odr_violation=0:abort_on_error=1:strict_string_checks=1}
# UB is fatal (the default only prints), so a finding fails the test or the fuzz run that triggers it.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Readable stacks in reports: llvm-14's symbolizer (install-deps.sh --sanitizers).
if [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}; fi
SANITIZED_BUILD_DIR=${SANITIZED_BUILD_DIR:-build-sanitize}
SANITIZED_JOBS=${JOBS:-$(nproc)}

# Configures $SANITIZED_BUILD_DIR (idempotent). -O1: sanitizer-friendly and cheaper to compile than -O3.
sanitized_configure() {
  local cxx=${SANITIZE_CXX:-clang++-14}
  if ! command -v "$cxx" > /dev/null; then
    echo "error: $cxx not found; install clang-14 and libclang-rt-14-dev (libFuzzer, sanitizer runtimes)" >&2
    exit 1
  fi
  cmake -S . -B "$SANITIZED_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
    -DCMAKE_CXX_COMPILER="$cxx" -DSAPLING_FUZZ=ON -DSAPLING_LIBTORCH=system > "$SANITIZED_BUILD_DIR.configure.log" 2>&1 ||
    { cat "$SANITIZED_BUILD_DIR.configure.log"; exit 1; }
}

# Builds the given ninja targets in $SANITIZED_BUILD_DIR and prints how long it took.
sanitized_build() {
  local start
  start=$(date +%s)
  ninja -C "$SANITIZED_BUILD_DIR" -j"$SANITIZED_JOBS" "$@"
  echo "sanitized build ($*): $(( $(date +%s) - start )) s"
}
