# man.cmake - write the paramd.1 manual page from docs/paramd.1.in and the
# program's own --help texts, so the page cannot drift from --help.
#   cmake -DPARAMD=path/to/paramd -DIN=docs/paramd.1.in -DOUT=paramd.1
#         -DVERSION=0.1.0 -P cmake/man.cmake
# Each command gets a subsection with its --help verbatim (no-fill), the
# text escaped for roff: backslashes doubled as \e, and a line starting
# with . or ' protected with \&.
function(help_of out)
  execute_process(COMMAND ${PARAMD} ${ARGN} --help OUTPUT_VARIABLE text
                  RESULT_VARIABLE rc ERROR_QUIET)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "man.cmake: '${PARAMD} ${ARGN} --help' failed (${rc})")
  endif()
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

help_of(top)
set(body ".SS paramd \\-\\-help\n.nf\n${top}.fi\n")
# The commands are those `paramd --help` lists ("  NAME   what it does"),
# so a new command gets its section without a change here.
string(REGEX MATCHALL "\n  [a-z]+ " listed "${top}")
set(cmds "")
foreach(l ${listed})
  string(STRIP "${l}" name)
  if(NOT name STREQUAL "version")
    list(APPEND cmds ${name})
  endif()
endforeach()
if(NOT cmds)
  message(FATAL_ERROR "man.cmake: no commands found in '${PARAMD} --help'")
endif()
foreach(cmd ${cmds})
  help_of(h ${cmd})
  string(APPEND body ".SS paramd ${cmd}\n.nf\n${h}.fi\n")
endforeach()
file(READ ${IN} page)
string(REPLACE "@COMMANDS@\n" "${body}" page "${page}")
string(REPLACE "@PARAMD_VERSION@" "${VERSION}" page "${page}")
file(WRITE ${OUT}.tmp "${page}")
file(RENAME ${OUT}.tmp ${OUT})
