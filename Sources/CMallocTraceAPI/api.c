/* SwiftPM builds a C target from at least one source file. This one only checks that malloctrace.h compiles
 * on its own; everything in it is inline, and nothing here defines an allocator function. */
#include "malloctrace.h"
