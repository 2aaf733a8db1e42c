/* zlib from the system (zlib1g-dev on Debian/Ubuntu): gzip for pprof exports. */
#include <zlib.h>

/* deflateInit2 is a macro: Swift cannot call it. windowBits 15 + 16 asks for a gzip header and trailer. */
static inline int mt_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
