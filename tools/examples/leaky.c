/* The quick start's example: a tiny word-frequency table that forgets to free part of itself.
 * It builds 2,000 entries, frees the table but leaks every 10th entry's name, and peaks while a
 * temporary 64 KiB scratch buffer is alive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *name;
    int count;
};

static char *copy_name(int index) {
    char buffer[32];
    snprintf(buffer, sizeof(buffer), "word-%d", index);
    return strdup(buffer);
}

static struct entry *build_table(int size) {
    struct entry *table = calloc((size_t)size, sizeof(struct entry));
    for (int i = 0; i < size; i++) {
        table[i].name = copy_name(i);
        table[i].count = i % 7;
    }
    return table;
}

static long sum_with_scratch(const struct entry *table, int size) {
    char *scratch = malloc(64 * 1024);
    long total = 0;
    for (int i = 0; i < size; i++) total += table[i].count + (long)strlen(table[i].name);
    memset(scratch, 0, 64 * 1024);
    free(scratch);
    return total;
}

static void free_table(struct entry *table, int size) {
    for (int i = 0; i < size; i++)
        if (i % 10 != 0) free(table[i].name); /* the bug: every 10th name leaks */
    free(table);
}

int main(void) {
    struct entry *table = build_table(2000);
    printf("total %ld\n", sum_with_scratch(table, 2000));
    free_table(table, 2000);
    return 0;
}
