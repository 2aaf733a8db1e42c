/* Loaded by fixture-leakkinds (scenario library-bss): keeps a block in a static of a dlopen'ed library,
 * whose .bss is a root like any module's. */
static void *kept;

void leakroot_keep(void *block) { kept = block; }
