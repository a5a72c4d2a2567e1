# install-python.cmake - install the Python package (python/paramd) into the
# site directory of PARAMD_PYTHON for the install prefix.  Run by
# `cmake --install` (install(CODE) in CMakeLists.txt), so it sees the
# prefix of that moment (--prefix) and DESTDIR.
#
# Which directory: $PARAMD_PYTHON_SITE if set; else the first of the
# interpreter's site directories (site.getsitepackages()) that is
# PREFIX/lib/...: /usr/local/lib/python3.X/dist-packages for /usr/local
# and /usr/lib/python3/dist-packages for /usr on Debian; else, for a prefix
# the interpreter does not search, PREFIX/lib/python3.X/site-packages (put
# it on PYTHONPATH).  _paths.py is written with the absolute paths of the
# installed library and program, so that the package finds the library it
# was installed with.
cmake_policy(PUSH)
cmake_policy(VERSION 3.18)
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(DEFINED ENV{PARAMD_PYTHON_SITE} AND NOT "$ENV{PARAMD_PYTHON_SITE}" STREQUAL "")
  set(site "$ENV{PARAMD_PYTHON_SITE}")
else()
  execute_process(
    COMMAND "${PARAMD_PYTHON}" -c [[
import os, site, sys
prefix = os.path.abspath(sys.argv[1])
for p in site.getsitepackages():
    rel = os.path.relpath(p, prefix)
    if rel.split(os.sep)[0] == "lib":
        print(p)
        break
else:
    print(os.path.join(prefix, "lib", "python%d.%d" % sys.version_info[:2], "site-packages"))
]] "${prefix}"
    OUTPUT_VARIABLE site OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR site STREQUAL "")
    message(FATAL_ERROR "install: cannot ask ${PARAMD_PYTHON} for its site directory; "
                        "set PARAMD_PYTHON_SITE=DIR (make install PYTHON_SITE=DIR)")
  endif()
endif()
file(INSTALL "${SRC}/python/paramd" DESTINATION "${site}"
     FILES_MATCHING PATTERN "*.py" PATTERN "_paths.py" EXCLUDE PATTERN "__pycache__" EXCLUDE)
file(WRITE "${BIN}/install-python/_paths.py"
"\"\"\"Where `make install` put the C library and the program (written at install).\"\"\"
LIBRARY = \"${prefix}/${LIBDIR}/${SONAME}\"
PROGRAM = \"${prefix}/bin/paramd\"
")
file(INSTALL "${BIN}/install-python/_paths.py" DESTINATION "${site}/paramd")
execute_process(COMMAND "${PARAMD_PYTHON}" -c "import sys; print(':'.join(sys.path))"
                OUTPUT_VARIABLE syspath OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REPLACE ":" ";" syspath "${syspath}")
list(FIND syspath "${site}" found)
if(found EQUAL -1)
  message(STATUS "paramd: the Python package is in ${site}, which ${PARAMD_PYTHON} "
                 "does not search: add it to PYTHONPATH")
endif()
cmake_policy(POP)
