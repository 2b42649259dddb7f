# The module shape (tests/shape/include_graph.py): every #include "kyso/<module>/..." is of a
# module its target links, and no module includes one above it. CMake knows the link graph, so
# the build writes it down once every target exists (the end of the top-level CMakeLists).
set(KYSO_TARGET_GRAPH "${CMAKE_BINARY_DIR}/kyso-target-graph.tsv")

function(kyso_collect_targets dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    kyso_collect_targets(${sub} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# One line per target: name, source dir (relative), sources, LINK_LIBRARIES,
# INTERFACE_LINK_LIBRARIES; lists joined with ';'.
function(kyso_write_target_graph)
  kyso_collect_targets(${PROJECT_SOURCE_DIR} targets)
  set(text "")
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(dir ${t} SOURCE_DIR)
    file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${dir}")
    if(rel STREQUAL "")
      set(rel ".")
    endif()
    foreach(p SOURCES LINK_LIBRARIES INTERFACE_LINK_LIBRARIES)
      get_target_property(v ${t} ${p})
      if(NOT v)
        set(v "")
      endif()
      string(REPLACE "\t" " " v "${v}")
      set(${p} "${v}")
    endforeach()
    string(APPEND text "${t}\t${rel}\t${SOURCES}\t${LINK_LIBRARIES}\t${INTERFACE_LINK_LIBRARIES}\n")
  endforeach()
  # Runs deferred in the top-level directory's scope: the path is spelled out again.
  set(graph "${CMAKE_BINARY_DIR}/kyso-target-graph.tsv")
  file(WRITE "${graph}.new" "${text}")
  file(COPY_FILE "${graph}.new" "${graph}" ONLY_IF_DIFFERENT)
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL kyso_write_target_graph)

find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME shape.include_graph
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/include_graph.py
          --graph ${KYSO_TARGET_GRAPH} --root ${PROJECT_SOURCE_DIR})
# The check itself fails on planted violations (in a copy of the tree).
add_test(NAME shape.include_graph_plants
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/plant-violations.sh ${KYSO_TARGET_GRAPH}
          ${PROJECT_SOURCE_DIR})
# Seven runs of the check: a loaded machine starts Python slowly.
set_tests_properties(shape.include_graph shape.include_graph_plants PROPERTIES
  TIMEOUT 300 LABELS "shape")

# --version and --help on every program (tests/shape/version-help.sh).
add_test(NAME shape.version_help
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/version-help.sh ${PROJECT_VERSION}
          $<TARGET_FILE:kyso> $<TARGET_FILE:kyso-agent> $<TARGET_FILE:kyso-appliance>
          $<TARGET_FILE:kyso-verifyd>)
set_tests_properties(shape.version_help PROPERTIES TIMEOUT 60 LABELS "shape")

# Every shell script parses (bench/remote/multi-node.sh did not, and nothing ran it).
add_test(NAME shape.shell_syntax
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/shell-syntax.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(shape.shell_syntax PROPERTIES TIMEOUT 60 LABELS "shape")
