/* Linked with -static (see the build plugin): LD_PRELOAD cannot reach it, and `malloctrace run` must say
 * so instead of producing an empty trace. */
#include <unistd.h>

int main(void) {
    ssize_t ignored = write(1, "static\n", 7);
    (void)ignored;
    return 0;
}
