"""Where the installed C library and program are.  None in the source tree;
`make install` writes this file again with the absolute paths it installed
to (see _lib.py for the order in which the library is looked for)."""
LIBRARY = None
PROGRAM = None
