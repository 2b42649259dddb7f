# kyso_enable_sanitizers(<target>): KYSO_SANITIZE="address;undefined" turns sanitizers on;
# KYSO_FUZZ adds the fuzzer's coverage instrumentation.
function(kyso_enable_sanitizers target)
  if(KYSO_SANITIZE)
    list(JOIN KYSO_SANITIZE "," _san)
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
    # For the few test steps that cannot run sanitized (tests/agent/test_items.cpp: libfaketime).
    target_compile_definitions(${target} PRIVATE KYSO_SANITIZED=1)
  endif()
  if(KYSO_FUZZ)
    # Coverage for libFuzzer; the ASan runtime resolves its hooks in programs that are no
    # fuzz target (the tests, kyso-agent).
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link)
  endif()
endfunction()

# kyso_sanitize_unoptimized(<source>...): in the sanitized build, these sources compile at -O0
# and without the fuzzer's coverage. Only for the network transports (Beast's WebSocket and
# HTTP(S) with every handler a template instance), which no fuzz target reaches (the targets feed
# the parsers behind them in-process): at -O1 with ASan, UBSan and coverage each took 4-9 minutes
# of a core, half of the cold sanitized build (agent/src/transport/listener.cpp: 330 s of CPU at
# -O1 with coverage, 97 s at -O0 with it, 71 s at -O0 without). The sanitizers check -O0 code
# just as well.
function(kyso_sanitize_unoptimized)
  if(KYSO_SANITIZE OR KYSO_FUZZ)
    set_source_files_properties(${ARGN} PROPERTIES COMPILE_OPTIONS "-O0;-fno-sanitize=fuzzer-no-link")
  endif()
endfunction()

# kyso_library(<name> SOURCES ... DEPS ...): a static library with public headers under include/.
function(kyso_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(kyso_${name} STATIC ${ARG_SOURCES})
  add_library(kyso::${name} ALIAS kyso_${name})
  target_include_directories(kyso_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_link_libraries(kyso_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  kyso_set_warnings(kyso_${name})
  kyso_enable_sanitizers(kyso_${name})
endfunction()

# kyso_executable(<name> SOURCES ... DEPS ... [REVISION]): REVISION for the programs that print
# `--version`: they may include kyso_revision.hpp (KYSO_GIT_REVISION, refreshed on every build).
function(kyso_executable name)
  cmake_parse_arguments(ARG "REVISION" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  # Windows programs carry the UTF-8 manifest (installer/windows/kyso.rc.in, docs/windows.md).
  if(WIN32 AND KYSO_WIN_MANIFEST)
    target_sources(${name} PRIVATE ${KYSO_WIN_MANIFEST})
  endif()
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  kyso_set_warnings(${name})
  kyso_enable_sanitizers(${name})
  if(ARG_REVISION)
    if(NOT TARGET kyso_revision)
      add_custom_target(kyso_revision
        COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                -DOUT=${CMAKE_BINARY_DIR}/revision/kyso_revision.hpp
                -P ${PROJECT_SOURCE_DIR}/cmake/KysoRevision.cmake
        BYPRODUCTS ${CMAKE_BINARY_DIR}/revision/kyso_revision.hpp
        COMMENT "Git revision for --version")
    endif()
    add_dependencies(${name} kyso_revision)
    target_include_directories(${name} PRIVATE ${CMAKE_BINARY_DIR}/revision)
  endif()
endfunction()
