/*
 * The mark phase of the leak scan, LeakSanitizer and memcheck style, over a sorted array of live blocks.
 * Runs while the other threads are parked: no allocation, no recursion (explicit worklists from mmap).
 *
 *   phase 1  roots → REACHABLE, following start pointers; interior hits are set aside
 *   phase 2  set-aside blocks not reachable → POSSIBLE, and everything they reach that is not reachable
 *   phase 3  memcheck's clique rule: every block still unmarked, in address order, floods what it
 *            reaches as INDIRECT; a block never reached from another leaked block stays DEFINITE, so
 *            a rootless cycle has exactly one definite member
 */
#include "leak_scan.h"

#include <string.h>

/* Swift keeps tags in the spare bits of heap pointers (enum payload tags in bit 63, ObjC bit 62, low
 * tag bits): stripped before lookup, or a Swift global holding an enum would leak its object
 * (LEAKSCAN.md §5). Harmless for glibc heaps: user addresses < 2^47, blocks 16-aligned. */
#define MT_POINTER_MASK (~0xFF00000000000007ull)

enum mt_mark_mode { MT_MODE_ROOTS, MT_MODE_POSSIBLE, MT_MODE_CLIQUE };

static inline size_t mt_block_size(const mt_live_entry_t *block) { return block->info & MT_LIVE_SIZE_MASK; }

/* ---- sorting -------------------------------------------------------------------------------------- */

/* LSD radix sort, 11 bits per pass over (address - lowest) >> 4, only as many passes as the span needs:
 * 1 M blocks in a 115 MB heap take 3 passes. */
void mt_sort_blocks(mt_live_entry_t *blocks, mt_live_entry_t *spare, size_t count) {
    if (count < 2) return;
    uintptr_t low = UINTPTR_MAX, high = 0;
    for (size_t i = 0; i < count; i++) {
        if (blocks[i].address < low) low = blocks[i].address;
        if (blocks[i].address > high) high = blocks[i].address;
    }
    uint64_t span = (uint64_t)(high - low) >> 4;
    mt_live_entry_t *from = blocks, *to = spare;
    for (unsigned shift = 0; shift == 0 || (span >> shift) != 0; shift += 11) {
        static size_t counts[1u << 11]; /* one scan at a time (leak_scan.c); keeps 16 KiB off the stack */
        memset(counts, 0, sizeof(counts));
        for (size_t i = 0; i < count; i++) counts[(((from[i].address - low) >> 4) >> shift) & 2047]++;
        size_t total = 0;
        for (size_t d = 0; d < 2048; d++) {
            size_t c = counts[d];
            counts[d] = total;
            total += c;
        }
        for (size_t i = 0; i < count; i++) to[counts[(((from[i].address - low) >> 4) >> shift) & 2047]++] = from[i];
        mt_live_entry_t *swap = from;
        from = to;
        to = swap;
        if (shift + 11 >= 64) break;
    }
    if (from != blocks) memcpy(blocks, from, count * sizeof(*blocks));
}

/* ---- readable memory ------------------------------------------------------------------------------- */

/* First readable mapping that ends above `address`. */
static size_t mt_first_mapping_after(const mt_heap_t *heap, uintptr_t address) {
    size_t lo = 0, hi = heap->readable_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (heap->readable[mid].end <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool mt_is_readable(const mt_heap_t *heap, uintptr_t start, uintptr_t end) {
    size_t i = mt_first_mapping_after(heap, start);
    uintptr_t covered = start;
    for (; i < heap->readable_count && covered < end; i++) {
        if (heap->readable[i].start > covered) return false;
        covered = heap->readable[i].end;
    }
    return covered >= end;
}

void mt_heap_prepare(mt_heap_t *heap) {
    heap->low = UINTPTR_MAX;
    heap->high = 0;
    for (size_t i = 0; i < heap->count; i++) {
        const mt_live_entry_t *block = &heap->blocks[i];
        size_t size = mt_block_size(block);
        uintptr_t end = block->address + (size ? size : 1);
        /* A stale entry (libc released the block without calling free) may have been unmapped. */
        heap->state[i] = mt_is_readable(heap, block->address, end) ? MT_STATE_UNMARKED : MT_STATE_GONE;
        if (heap->state[i] == MT_STATE_GONE) continue;
        if (block->address < heap->low) heap->low = block->address;
        if (end > heap->high) heap->high = end;
    }
}

/* ---- lookup ------------------------------------------------------------------------------------------ */

/* One of memcheck's default heuristics (--leak-check-heuristics): an interior pointer that programs keep on
 * purpose, which memcheck (and LSan, which counts every interior pointer) take as a pointer to the block. The
 * block is readable (not GONE) and at least 8-aligned. Not applied: the new[]-cookie and length64 rules (a first
 * word that divides the rest, a pointer 8 bytes in): a first word of 1 (a reference count) and a stale pointer
 * 8 bytes in would make a true leak reachable, which costs more than a kept array counted possible; and the
 * multiple-inheritance rule, which needs to know which words are vtable addresses. */
static inline bool mt_is_kept_interior(const mt_live_entry_t *block, size_t size, size_t offset) {
    const uint64_t *words = (const uint64_t *)block->address;
    if (offset == 24 && size >= 25) {
        /* libstdc++'s copy-on-write string (std::runtime_error's message): length, capacity, refcount, chars, NUL. */
        uint64_t length = words[0], capacity = words[1];
        return capacity == size - 25 && length <= capacity;
    }
    return false;
}

/* The block `value`, read at `at`, points into, or -1; `*interior` says whether it points past the start. */
static inline ptrdiff_t mt_find_block(const mt_heap_t *heap, uintptr_t at, uintptr_t value, bool *interior) {
    size_t lo = 0, hi = heap->count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (heap->blocks[mid].address <= value)
            lo = mid;
        else
            hi = mid;
    }
    const mt_live_entry_t *block = &heap->blocks[lo];
    if (value < block->address || heap->state[lo] == MT_STATE_GONE) return -1;
    size_t size = mt_block_size(block), offset = value - block->address;
    if (offset >= (size ? size : 1)) return -1;
    *interior = offset != 0;
    /* glibc's top-chunk pointer (main_arena) points at the next chunk header, which lies in the last
     * 8 bytes of a block whose usable size equals its request: not a pointer to this block (LEAKSCAN §2).
     * Only there: anywhere else such a pointer is the program's own (an intrusive list's link as the last
     * member of its item), an interior pointer like any other. */
    if (offset != 0 && offset + 8 >= size &&
        at - heap->allocator_state.start < heap->allocator_state.end - heap->allocator_state.start &&
        offset == heap->usable_size((void *)block->address) - 8)
        return -1;
    if (*interior && mt_is_kept_interior(block, size, offset)) *interior = false;
    return (ptrdiff_t)lo;
}

/* ---- scanning ---------------------------------------------------------------------------------------- */

static size_t g_stack_top;

static inline void mt_push(mt_heap_t *heap, size_t index) { heap->stack[g_stack_top++] = (uint32_t)index; }

static void mt_scan_words(mt_heap_t *heap, uintptr_t start, uintptr_t end, enum mt_mark_mode mode, size_t leader) {
    start = (start + 7) & ~(uintptr_t)7;
    end &= ~(uintptr_t)7;
    const uintptr_t low = heap->low, span = heap->high - heap->low;
    for (uintptr_t at = start; at < end; at += 8) {
        uintptr_t value = *(const volatile uintptr_t *)at & MT_POINTER_MASK;
        if (MT_LIKELY(value - low >= span)) continue; /* outside the heap span: most words */
        bool interior;
        ptrdiff_t found = mt_find_block(heap, at, value, &interior);
        if (found < 0) continue;
        size_t j = (size_t)found;
        uint8_t state = heap->state[j];
        switch (mode) {
        case MT_MODE_ROOTS:
            if (state != MT_STATE_UNMARKED) break;
            if (!interior) {
                heap->state[j] = MT_STATE_REACHABLE;
                mt_push(heap, j);
            } else if (!heap->queued[j]) {
                heap->queued[j] = 1;
                heap->interior[heap->interior_count++] = (uint32_t)j;
            }
            break;
        case MT_MODE_POSSIBLE:
            if (state != MT_STATE_UNMARKED) break;
            heap->state[j] = MT_STATE_POSSIBLE;
            mt_push(heap, j);
            break;
        case MT_MODE_CLIQUE:
            if (j == leader) break;
            if (state == MT_STATE_UNMARKED) {
                heap->state[j] = MT_STATE_INDIRECT;
                mt_push(heap, j);
            } else if (state == MT_STATE_DEFINITE) {
                /* An earlier leader, reached from this clique: it joins it (its own flood is done). */
                heap->state[j] = MT_STATE_INDIRECT;
            }
            break;
        }
    }
}

static void mt_drain(mt_heap_t *heap, enum mt_mark_mode mode, size_t leader) {
    while (g_stack_top > 0) {
        const mt_live_entry_t *block = &heap->blocks[heap->stack[--g_stack_top]];
        mt_scan_words(heap, block->address, block->address + mt_block_size(block), mode, leader);
    }
}

void mt_mark_root(mt_heap_t *heap, uintptr_t start, uintptr_t end) {
    if (heap->count == 0 || start >= end) return;
    /* Only the readable parts: a thread's range may cross a guard page, a module's RW segment a hole. */
    for (size_t i = mt_first_mapping_after(heap, start); i < heap->readable_count; i++) {
        const mt_range_t *mapping = &heap->readable[i];
        if (mapping->start >= end) break;
        uintptr_t from = start > mapping->start ? start : mapping->start;
        uintptr_t to = end < mapping->end ? end : mapping->end;
        mt_scan_words(heap, from, to, MT_MODE_ROOTS, 0);
        mt_drain(heap, MT_MODE_ROOTS, 0);
    }
}

void mt_mark_block_reachable(mt_heap_t *heap, size_t index) {
    if (heap->state[index] != MT_STATE_UNMARKED) return;
    heap->state[index] = MT_STATE_REACHABLE;
    mt_push(heap, index);
    mt_drain(heap, MT_MODE_ROOTS, 0);
}

void mt_mark_finish(mt_heap_t *heap) {
    for (size_t k = 0; k < heap->interior_count; k++) {
        size_t j = heap->interior[k];
        if (heap->state[j] != MT_STATE_UNMARKED) continue;
        heap->state[j] = MT_STATE_POSSIBLE;
        mt_push(heap, j);
        mt_drain(heap, MT_MODE_POSSIBLE, 0);
    }
    for (size_t i = 0; i < heap->count; i++) {
        if (heap->state[i] != MT_STATE_UNMARKED) continue;
        heap->state[i] = MT_STATE_DEFINITE;
        mt_push(heap, i);
        mt_drain(heap, MT_MODE_CLIQUE, i);
    }
}
