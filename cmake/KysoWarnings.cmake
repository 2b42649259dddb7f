# kyso_set_warnings(<target>): the project's warning set; errors when KYSO_WERROR is on (CI).
function(kyso_set_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
    -Wold-style-cast -Woverloaded-virtual -Wdouble-promotion -Wformat=2
    -Wimplicit-fallthrough)
  if(KYSO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
