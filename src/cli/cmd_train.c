#include <stdio.h>
#include "cli/cli.h"
int cmd_train(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 2; }
