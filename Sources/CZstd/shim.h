/* libzstd, found with pkg-config (libzstd-dev on Debian/Ubuntu): compresses finished traces. */
#include <zstd.h>
