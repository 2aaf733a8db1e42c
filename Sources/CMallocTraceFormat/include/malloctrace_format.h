/*
 * malloctrace trace format: the single source of truth.
 *
 * The preload library (writer) includes this header and the Swift reader imports it as the
 * CMallocTraceFormat module. docs/trace-format.md describes the same bytes for humans; when the two
 * disagree, this file wins. Every multi-byte fixed-width field is little-endian.
 *
 * File layout
 *   mt_file_header_t                      16 bytes at offset 0
 *   record, record, ...                   each starts with mt_record_header_t (8 bytes, 8-aligned)
 *   zero fill                             a record header whose kind is MT_RECORD_END_OF_DATA (0)
 *
 * Records are self-delimiting (kind + length), so a reader skips kinds it does not know.
 * Allocation events travel inside MT_RECORD_CHUNK records: one chunk belongs to one thread and holds
 * a packed stream of events (see MT_EVENT_*). Chunks are self-contained: every delta in a chunk is
 * relative to state that starts at zero at the chunk's first byte.
 */
#ifndef MALLOCTRACE_FORMAT_H
#define MALLOCTRACE_FORMAT_H

#include <stdint.h>

#define MT_MAGIC "MTRACE\x1a\x0a" /* 8 bytes, no NUL terminator in the file */
#define MT_MAGIC_SIZE 8
/* The newest version a reader of this header understands. Version 2 adds compressed chunks
 * (MT_FILE_FLAG_ZSTD_CHUNKS); a file without them is written as version 1, which every reader reads.
 * Version 3 adds keyed heap events (MT_FILE_FLAG_KEYED_BLOCKS): blocks named by the sequence number of
 * their allocation instead of their address, sizes and stacks interned in an MT_RECORD_PAIRS table. */
#define MT_FORMAT_VERSION 3
/* What `malloctrace compress` writes when the keyed encoding does not apply (docs/trace-format.md 4.11). */
#define MT_FORMAT_VERSION_COMPRESSED 2
/* What the preload library writes: it never compresses, so its traces stay readable by version 1 readers. */
#define MT_FORMAT_VERSION_UNCOMPRESSED 1

/* Offset 0 of every trace file.
 *
 *   0       8       10      12              16
 *   +-------+-------+-------+---------------+
 *   | magic | vers. | hsize | flags         |
 *   +-------+-------+-------+---------------+
 */
typedef struct mt_file_header {
    uint8_t magic[MT_MAGIC_SIZE];
    uint16_t version;     /* MT_FORMAT_VERSION of the writer */
    uint16_t header_size; /* sizeof(mt_file_header_t); records start here */
    uint32_t flags;       /* version 1: reserved, 0. Version 2: MT_FILE_FLAG_* feature bits */
} mt_file_header_t;

/* File header flags (version 2 and later). A reader rejects a file with a bit it does not know, so a
 * feature that changes how records read can be added without another version. */
enum mt_file_flag {
    MT_FILE_FLAG_ZSTD_CHUNKS = 0x1, /* CHUNK records may carry MT_RECORD_FLAG_ZSTD */
    /* Version 3: chunks may hold keyed heap events (MT_EVENT_KEYED_*) and the file has one MT_RECORD_PAIRS
     * record; block addresses the reader sees are keys (made of a sequence number, see MT_BLOCK_KEY_BIT), not
     * addresses. */
    MT_FILE_FLAG_KEYED_BLOCKS = 0x8,
};

/* Every record starts with this header, at an 8-byte aligned offset.
 *
 *   0      1       2        4               8
 *   +------+-------+--------+---------------+------------------+
 *   | kind | flags | rsvd   | length (u32)  | payload[length]  |
 *   +------+-------+--------+---------------+------------------+
 *
 * length counts payload bytes only; the next record starts at the next 8-byte boundary after the
 * payload. A kind of 0 means "no more records" (the writer pre-allocates zeroed space).
 */
typedef struct mt_record_header {
    uint8_t kind;
    uint8_t flags;     /* MT_RECORD_FLAG_*; 0 in version 1 */
    uint16_t reserved; /* 0 */
    uint32_t length;
} mt_record_header_t;

/* Record header flags. */
enum mt_record_flag {
    /* CHUNK only, in files with MT_FILE_FLAG_ZSTD_CHUNKS: the chunk header stays in the clear and the
     * events are one zstd frame (see MT_RECORD_CHUNK below). Written by `malloctrace run` / `compress`
     * after the target has exited, never by the preload library. */
    MT_RECORD_FLAG_ZSTD = 0x01,
    /* INDEX uses the same bit: its stored analysis (after mt_index_record_t) is one zstd frame that states
     * its content size (at most MT_INDEX_MAX_PAYLOAD). */
};

enum mt_record_kind {
    MT_RECORD_END_OF_DATA = 0,   /* zero fill: the end of what was written */
    MT_RECORD_PROCESS = 1,       /* mt_process_record_t + strings */
    MT_RECORD_CHUNK = 2,         /* mt_chunk_header_t + event stream */
    MT_RECORD_END = 3,           /* mt_end_record_t: the process reached exit */
    MT_RECORD_PADDING = 4,       /* ignore the payload */
    MT_RECORD_LEAK_SCAN = 5,     /* mt_leak_scan_record_t + the kind of every live block (exit-time scan) */
    MT_RECORD_PROCESS_STATS = 6, /* mt_process_stats_record_t: peak and current RSS, program break at the end */
    MT_RECORD_ALLOCATOR = 7,     /* mt_allocator_record_t: which allocator served the calls, what is recorded of it */
    MT_RECORD_INDEX = 10,        /* mt_index_record_t + stored analysis: derived data for instant reports */
    MT_RECORD_PAIRS = 11,        /* version 3: the (size, stack id) pairs keyed allocations refer to */
};

/* MT_RECORD_PROCESS payload: fixed part, then `exe_length` bytes of executable path and
 * `argv_length` bytes of NUL-separated arguments.
 *
 *   0     4      8           16           24        28     32       36      40      44       48
 *   +-----+------+-----------+------------+---------+------+--------+-------+-------+--------+
 *   | pid | ppid | start     | start      | page    | max  | unwind | exe   | argv  | sample |
 *   |     |      | realtime  | monotonic  | size    | depth| mode   | len   | len   | rate   |
 *   +-----+------+-----------+------------+---------+------+--------+-------+-------+--------+
 */
typedef struct mt_process_record {
    uint32_t pid;
    uint32_t ppid;
    uint64_t start_realtime_ns;  /* CLOCK_REALTIME at start, ns since the epoch */
    uint64_t start_monotonic_ns; /* CLOCK_MONOTONIC at start; event times are relative to it */
    uint32_t page_size;
    uint32_t max_depth;   /* configured stack depth */
    uint32_t unwind_mode; /* enum mt_unwind_mode */
    uint32_t exe_length;
    uint32_t argv_length;
    /* 0: every call is recorded. Otherwise sampling by bytes: an allocation of s bytes was recorded with
     * probability 1 - exp(-s / sample_rate), and only the frees of recorded blocks are recorded. */
    uint32_t sample_rate;
} mt_process_record_t;

enum mt_unwind_mode {
    MT_UNWIND_LIBUNWIND = 0,
    MT_UNWIND_FRAME_POINTER = 1, /* reserved */
    MT_UNWIND_NONE = 2,
    MT_UNWIND_FAST = 3,   /* cached .eh_frame rules, libunwind where they do not apply */
    MT_UNWIND_VERIFY = 4, /* both, compared on every stack (for testing the fast unwinder) */
};

/* MT_RECORD_CHUNK payload: this header, then `used` bytes of events. The record's length is the
 * chunk's capacity; `used` grows in place while the thread runs, so a chunk cut short by a crash or
 * SIGKILL still holds every event completed before it.
 *
 *   0       4       8
 *   +-------+-------+--------------------------+
 *   | tid   | used  | events[used] ... (free)  |
 *   +-------+-------+--------------------------+
 */
typedef struct mt_chunk_header {
    uint32_t tid;  /* kernel thread id */
    uint32_t used; /* bytes of events after this header (compressed chunk: after decompression) */
} mt_chunk_header_t;

/* A compressed chunk (record flag MT_RECORD_FLAG_ZSTD): the same chunk header, then exactly one zstd
 * frame that fills the rest of the payload (record length = 8 + frame size) and decompresses to the
 * chunk's `used` event bytes. The frame must state its content size, equal to `used`; `used` is at
 * most MT_MAX_DECOMPRESSED_CHUNK, so a reader knows the memory a chunk needs before decompressing it.
 *
 *   0       4       8
 *   +-------+-------+---------------------------------------+
 *   | tid   | used  | zstd frame (content size = used)      |
 *   +-------+-------+---------------------------------------+
 */
#define MT_MAX_DECOMPRESSED_CHUNK (4u << 20) /* the writer's chunks fit in one 4 MiB window */

/* MT_RECORD_END payload: written when the process reaches exit (library destructor, or _exit). */
typedef struct mt_end_record {
    uint64_t end_monotonic_ns; /* relative to start_monotonic_ns */
    uint64_t last_sequence;    /* global event sequence number reached */
    int32_t exit_status;       /* status given to _exit, or -1 when unknown (normal exit path) */
    uint32_t how;              /* enum mt_end_reason */
} mt_end_record_t;

enum mt_end_reason {
    MT_END_DESTRUCTOR = 0,      /* library destructor ran: exit() or return from main */
    MT_END_UNDERSCORE_EXIT = 1, /* _exit / _Exit called directly */
    MT_END_EXEC = 2,            /* execve/execv/execvp/execvpe: the process image is being replaced.
                                 * If the exec fails, recording goes on and a later END follows. */
    MT_END_QUICK_EXIT = 3,      /* quick_exit: after the at_quick_exit handlers, without destructors */
};

/* MT_RECORD_PROCESS_STATS payload: the process's memory as the kernel counts it, taken when the trace ends
 * (written just before the END record, by every path that writes one: destructor, _exit, quick_exit, exec).
 * A reader uses the last one; older readers skip it by its length.
 *
 *   0        8           16       24          32            40     44       48
 *   +--------+-----------+--------+-----------+-------------+------+--------+
 *   | time   | peak rss  | rss    | brk bytes | start break | how  | rsvd   |
 *   +--------+-----------+--------+-----------+-------------+------+--------+
 */
typedef struct mt_process_stats_record {
    uint64_t time_ns;        /* relative to start_monotonic_ns */
    uint64_t peak_rss_bytes; /* getrusage(RUSAGE_SELF).ru_maxrss * 1024: the high-water mark of the resident set */
    uint64_t rss_bytes;      /* resident pages now (/proc/self/statm) * page size; 0 when unreadable */
    uint64_t brk_bytes;      /* sbrk(0) - start_break, 0 if the break moved below it: the brk heap's growth */
    uint64_t start_break;    /* where the brk heap starts (the kernel's start_brk; sbrk(0) at start if unknown) */
    uint32_t how;            /* enum mt_end_reason of the END record that follows */
    uint32_t reserved;       /* 0 */
} mt_process_stats_record_t;

/* MT_RECORD_ALLOCATOR payload: written once at start, before the first chunk, so a reader knows it before it decodes
 * any event. It says which allocator serves the calls and what the trace records about its blocks. Older readers
 * skip it by its length (the format version did not change); a trace without it records none of this.
 *
 *   0      4          8       12      16                24       28       32
 *   +------+----------+-------+-------+-----------------+--------+--------+
 *   | kind | features | major | minor | mmap threshold  | dynamic| rsvd   |
 *   +------+----------+-------+-------+-----------------+--------+--------+
 */
typedef struct mt_allocator_record {
    uint32_t allocator;  /* enum mt_allocator_kind */
    uint32_t features;   /* enum mt_allocator_feature bits */
    uint32_t libc_major; /* gnu_get_libc_version(), e.g. 2 and 36; 0 when unknown */
    uint32_t libc_minor;
    uint64_t mmap_threshold;       /* glibc: the mmap threshold at start (128 KiB unless the environment set it) */
    uint32_t threshold_is_dynamic; /* 1: glibc moves the threshold up when a larger mmapped chunk is freed */
    uint32_t reserved;             /* 0 */
} mt_allocator_record_t;

enum mt_allocator_kind {
    MT_ALLOCATOR_OTHER = 0, /* the real malloc is not libc's own (jemalloc, mimalloc, tcmalloc preloaded) */
    MT_ALLOCATOR_GLIBC = 1, /* glibc's ptmalloc: chunk headers can be read */
};

enum mt_allocator_feature {
    /* Every successful allocation has a usable size (malloc_usable_size): an allocation event followed by a
     * CHUNK_INFO event carries it there; without one it is what the reader derives (see MT_EVENT_CHUNK_INFO). */
    MT_ALLOCATOR_USABLE_SIZES = 0x1,
    /* glibc only: CHUNK_INFO events carry the chunk header's IS_MMAPPED and NON_MAIN_ARENA bits. */
    MT_ALLOCATOR_CHUNK_FLAGS = 0x2,
    /* MAPPING events record the program's own anonymous mmap/munmap/mremap and brk/sbrk calls (run --mmap). */
    MT_ALLOCATOR_MAPPINGS = 0x4,
};

/* MT_RECORD_LEAK_SCAN payload: what a conservative mark phase inside the process (at exit, _exit or
 * on demand; only when leak scanning is on) found out about every block live at that moment. One scan
 * may need several records (`part` 0, 1, ...; each at most MT_LEAK_SCAN_MAX_PAYLOAD bytes); all parts of
 * one scan repeat the same fixed fields except `part` and `entry_count`. A scan is complete when its parts'
 * entry counts add up to `total_blocks`; a reader uses the last complete scan.
 *
 *   0          8        16     20      24        28       32        40        44       48
 *   +----------+--------+------+-------+---------+--------+---------+---------+--------+--------------+
 *   | sequence | time   | part | count | threads | missed | duration| trigger | total  | entries ...  |
 *   +----------+--------+------+-------+---------+--------+---------+---------+--------+--------------+
 *
 * Entries, `entry_count` of them, addresses ascending within a record:
 *   v ((address - previous address) << 3 | kind)      previous address starts at 0 in every record
 * where kind is an mt_leak_kind. Blocks allocated after `scan_sequence` are not in the scan.
 */
typedef struct mt_leak_scan_record {
    uint64_t scan_sequence;   /* g_sequence when the live set was frozen */
    uint64_t scan_time_ns;    /* relative to start_monotonic_ns */
    uint32_t part;            /* 0, 1, ... within one scan */
    uint32_t entry_count;     /* entries in this record */
    uint32_t threads_scanned; /* threads whose registers and stack were scanned (the calling one included) */
    uint32_t threads_missed;  /* threads that did not stop in time: their stacks were not scanned */
    uint64_t duration_ns;     /* the scan's own time: stop, mark, resume */
    uint32_t trigger;         /* enum mt_leak_scan_trigger */
    uint32_t total_blocks;    /* entries in all parts of this scan */
} mt_leak_scan_record_t;

#define MT_LEAK_SCAN_MAX_PAYLOAD (1u << 20)

/* How a live block stood at the scan, as LeakSanitizer and valgrind memcheck define the kinds. */
enum mt_leak_kind {
    MT_LEAK_REACHABLE = 0, /* a pointer to its start is reachable from a root (globals, stacks, registers,
                            * TLS), or ld.so allocated it (DTV, dynamic TLS: LeakSanitizer's rule) */
    MT_LEAK_INDIRECT = 1,  /* reachable only from leaked blocks */
    MT_LEAK_POSSIBLE = 2,  /* reachable from a root only through pointers into its interior */
    MT_LEAK_DEFINITE = 3,  /* no pointer to it at all; also the one member chosen as the root of a cycle */
};

enum mt_leak_scan_trigger {
    MT_LEAK_SCAN_AT_EXIT = 0,            /* exit() or return from main (library destructor) */
    MT_LEAK_SCAN_AT_UNDERSCORE_EXIT = 1, /* _exit / _Exit */
    MT_LEAK_SCAN_ON_DEMAND = 2,          /* malloctrace_scan_leaks() */
    MT_LEAK_SCAN_AT_QUICK_EXIT = 3,      /* quick_exit */
};

/* MT_RECORD_INDEX payload: the analysis a default `malloctrace report` prints, stored by `malloctrace run`
 * and `compress` after they have read every event, so that a later report need not read them again.
 * Derived data, never trusted over the events: a reader uses it only when it is the last record of the
 * file, its `layout` is the reader's MT_INDEX_LAYOUT, `covered_bytes` is exactly this record's offset and
 * `checksum` equals the checksum of the file's first `covered_bytes` bytes and `payload_checksum` the low
 * 32 bits of the checksum of the stored analysis; otherwise (damaged, cut short, events changed or
 * appended, another writer) it is ignored and the events are read as usual.
 * Older readers skip the record by its length. Written only into compressed traces (the preload library's
 * zero-filled tail ends the records of an uncompressed one); `compress` drops an index it copies.
 *
 *   0        4        8                16           24
 *   +--------+--------+----------------+------------+----------------------------------+
 *   | layout | p.sum  | covered bytes  | checksum   | stored analysis (docs/trace-format.md 4.8)
 *   +--------+--------+----------------+------------+----------------------------------+
 *
 * With record flag MT_RECORD_FLAG_ZSTD the stored analysis is one zstd frame (content size stated, at most
 * MT_INDEX_MAX_PAYLOAD); payload_checksum covers the bytes as stored.
 *
 * checksum: four 64-bit lanes, lane i starting at MT_INDEX_SEED + i; the bytes are read as little-endian
 * u64 words w[0], w[1], ... (the last word zero-padded), word j goes to lane j % 4:
 *   lane = rotl64(lane ^ (w * MT_INDEX_PRIME1), 31) * MT_INDEX_PRIME2
 * and the result is (rotl64(lane0, 1) + rotl64(lane1, 7) + rotl64(lane2, 12) + rotl64(lane3, 18)) ^ length.
 * It detects changes, not attacks: an index is a cache of what the events say, not a signature.
 */
typedef struct mt_index_record {
    uint32_t layout;           /* MT_INDEX_LAYOUT of the writer */
    uint32_t payload_checksum; /* low 32 bits of the checksum of the stored analysis that follows */
    uint64_t covered_bytes;    /* file bytes the analysis was computed from: 0 up to this record's header */
    uint64_t checksum;         /* of those bytes, as above */
} mt_index_record_t;

#define MT_INDEX_LAYOUT 1u
#define MT_INDEX_SEED 0x6d616c6c6f637472ull /* "malloctr" */
#define MT_INDEX_PRIME1 0x9E3779B185EBCA87ull
#define MT_INDEX_PRIME2 0xC2B2AE3D27D4EB4Full
#define MT_INDEX_MAX_PAYLOAD (64u << 20) /* a reader ignores a larger index */

/*
 * Events inside a chunk. Each starts with one opcode byte. Integers are LEB128 varints ("v");
 * "z" is a zigzag-encoded signed varint. Per-chunk state, all starting at 0:
 *   seq   last sequence number        (events carry seq - previous seq)
 *   ptr   last non-zero pointer       (pointers are z: ptr - previous ptr; a result of 0 leaves it)
 *
 * Allocation opcodes (MT_EVENT_MALLOC .. MT_EVENT_PVALLOC):
 *   op | v seq_delta | v size | z ptr_delta | v stack_id [| v alignment  (aligned kinds only)]
 *   size is the requested size in bytes (nmemb*size for calloc); ptr 0 means the call failed.
 * MT_EVENT_REALLOC, MT_EVENT_REALLOCARRAY:
 *   op | v seq_delta (before the call) | v seq_delta (after) | v size | z old_ptr_delta
 *      | z new_ptr_delta | v stack_id
 *   old_ptr_delta is relative to the previous ptr, new_ptr_delta to old_ptr. The old block is
 *   released at the first sequence number, the new one exists from the second. new_ptr 0 with
 *   size > 0 is a failure (old block intact); new_ptr 0 with size 0 freed the old block.
 * MT_EVENT_FREE:
 *   op | v seq_delta | z ptr_delta          (free(NULL) is not recorded)
 * MT_EVENT_STACK (defines a stack id, once per process, in the chunk of the thread that captured the
 *   stack first; other threads use the id without defining it, so readers resolve ids after reading):
 *   op | v stack_id | v frame_count | v frame[0] | z frame[i] - frame[i-1] ...
 *   frame[0] is the innermost return address. Ids are global to the process.
 * MT_EVENT_TIME (the thread's clock moved; applies to the events that follow in this chunk):
 *   op | v nanoseconds since start_monotonic_ns
 *
 * Opcodes >= MT_EVENT_FIRST_SIZED carry their payload length, so readers skip unknown ones:
 *   op | v payload_length | payload
 * MT_EVENT_MODULE (a module is mapped; emitted at start and, after dlopen, before the first stack that
 *   contains one of its addresses):
 *   v module_id | v load_bias | v segment_count | (v start | v size) * segment_count
 *   | v build_id_length | build_id bytes | v path_length | path bytes
 *   segments are PT_LOAD ranges as runtime addresses.
 * MT_EVENT_MODULE_UNLOAD (dlclose unmapped it; noticed at the next new stack, so it may come late):
 *   v module_id
 * MT_EVENT_RSS_SAMPLE (the process's memory, sampled by whichever thread's coarse clock passes the next
 *   sample time first, at most once per MT_RSS_SAMPLE_INTERVAL_NS; only when a thread records an event):
 *   v time_ns | v rss_bytes | v brk_bytes
 *   time_ns since start_monotonic_ns (coarse clock); rss_bytes and brk_bytes as in MT_RECORD_PROCESS_STATS.
 * MT_EVENT_CHUNK_INFO (right after the allocation event it describes, in traces whose ALLOCATOR record has
 *   MT_ALLOCATOR_USABLE_SIZES; describes the block that event produced):
 *   v ((usable - requested) << 2 | is_mmapped << 1 | non_main_arena)
 *   Written only when the block differs from what the reader derives: on glibc a chunk of the thread's current
 *   arena (the non_main_arena bit of the chunk's last CHUNK_INFO that was not mmapped; 0 at a chunk's start)
 *   with usable = max(32, (requested + 8 + 15) & ~15) - 8; elsewhere usable = requested. The flag bits are 0
 *   unless MT_ALLOCATOR_CHUNK_FLAGS.
 * MT_EVENT_MAPPING (the program's own call, not the allocator's; only with MT_ALLOCATOR_MAPPINGS):
 *   v seq | v call (enum mt_mapping_call) | v stack_id | v a | v b | v c | v d
 *   mmap: a address, b length, c prot, d flags (anonymous mappings only); munmap: a address, b length;
 *   mremap: a old address, b old length, c new address, d new length; brk, sbrk: a break before, b break after.
 *   Failed calls are not recorded. seq is a global sequence number, as heap events have.
 * MT_EVENT_MALLOPT (the program called mallopt): v seq | z parameter | z value | v result
 *
 * The control API's events (malloctrace.h). Sized, so older readers skip them; they touch no delta state:
 * every number is absolute (seq is a sequence number as in section 7 of the spec, ptr a plain address).
 * MT_EVENT_POOL_CREATE:   v seq | v pool_id | v stack_id | v name_length | name
 * MT_EVENT_POOL_ALLOC:    v seq | v pool_id | v ptr | v size | v stack_id
 * MT_EVENT_POOL_FREE:     v seq | v pool_id | v ptr
 * MT_EVENT_POOL_DESTROY:  v seq | v pool_id                  (releases every live block of the pool)
 * MT_EVENT_POOL_BACKING:  v seq | v pool_id | v ptr          (the heap block at ptr is carved into pool blocks)
 * MT_EVENT_PAUSE:         v seq | v time_ns | v paused       (1: nothing allocated after seq is recorded; 0: resumed)
 * MT_EVENT_MARK:          v seq | v time_ns | v name_length | name
 * MT_EVENT_SNAPSHOT:      v seq | v time_ns | v name_length | name   (the live set at seq)
 *   pool ids are 1, 2, ... per process; names are at most 256 bytes of UTF-8 (cut by the writer);
 *   time_ns is the precise monotonic clock since start_monotonic_ns.
 */
enum mt_event_opcode {
    MT_EVENT_MALLOC = 0x01,
    MT_EVENT_CALLOC = 0x02,
    MT_EVENT_REALLOC = 0x03,
    MT_EVENT_REALLOCARRAY = 0x04,
    MT_EVENT_POSIX_MEMALIGN = 0x05,
    MT_EVENT_ALIGNED_ALLOC = 0x06,
    MT_EVENT_MEMALIGN = 0x07,
    MT_EVENT_VALLOC = 0x08,
    MT_EVENT_PVALLOC = 0x09,
    MT_EVENT_FREE = 0x0A,
    MT_EVENT_STACK = 0x10,
    MT_EVENT_TIME = 0x11,
    /* Version 3 (see the comment above and docs/trace-format.md 6.9): MT_EVENT_KEYED_BASE + the opcode of the
     * same call in version 1. They touch neither ptr nor any block address: the block's key is its seq. */
    MT_EVENT_KEYED_BASE = 0x20,
    MT_EVENT_KEYED_MALLOC = 0x21, /* v seq_delta | v pair */
    MT_EVENT_KEYED_CALLOC = 0x22, /* v seq_delta | v pair */
    /* old_ref 0: the old pointer was NULL; else the old block is the one allocated at seq_before - old_ref. The
     * call succeeded: the new block's key is its seq_after. Failures and frees by realloc stay version 1 events. */
    MT_EVENT_KEYED_REALLOC = 0x23,        /* v seq_delta (before) | v seq_delta (after) | v pair | v old_ref */
    MT_EVENT_KEYED_REALLOCARRAY = 0x24,   /* as KEYED_REALLOC */
    MT_EVENT_KEYED_POSIX_MEMALIGN = 0x25, /* v seq_delta | v pair | v alignment, through KEYED_PVALLOC */
    MT_EVENT_KEYED_ALIGNED_ALLOC = 0x26,
    MT_EVENT_KEYED_MEMALIGN = 0x27,
    MT_EVENT_KEYED_VALLOC = 0x28,
    MT_EVENT_KEYED_PVALLOC = 0x29,
    MT_EVENT_KEYED_FREE = 0x2A, /* v seq_delta | v ref: the block allocated at seq - ref (ref >= 1) */
    /* v seq_delta | z near: the block allocated at released + near, where `released` (chunk state, 0 at the
     * start) is the allocation seq of the block the chunk's last keyed release (KEYED_FREE, KEYED_FREE_NEAR,
     * KEYED_REALLOC with old_ref > 0) released: programs often free blocks allocated side by side. */
    MT_EVENT_KEYED_FREE_NEAR = 0x2B,
    MT_EVENT_FIRST_SIZED = 0x80,
    MT_EVENT_MODULE = 0x80,
    MT_EVENT_MODULE_UNLOAD = 0x81,
    MT_EVENT_RSS_SAMPLE = 0x82,
    MT_EVENT_CHUNK_INFO = 0x83,
    MT_EVENT_MAPPING = 0x84,
    MT_EVENT_MALLOPT = 0x85,
    /* The control API (malloctrace.h); see docs/trace-format.md 6.x for each payload. */
    MT_EVENT_POOL_CREATE = 0x88,
    MT_EVENT_POOL_ALLOC = 0x89,
    MT_EVENT_POOL_FREE = 0x8A,
    MT_EVENT_POOL_DESTROY = 0x8B,
    MT_EVENT_POOL_BACKING = 0x8C,
    MT_EVENT_PAUSE = 0x8D,
    MT_EVENT_MARK = 0x8E,
    MT_EVENT_SNAPSHOT = 0x8F,
};

enum mt_mapping_call {
    MT_MAPPING_MMAP = 0,
    MT_MAPPING_MUNMAP = 1,
    MT_MAPPING_MREMAP = 2,
    MT_MAPPING_BRK = 3,
    MT_MAPPING_SBRK = 4,
};

/* glibc's chunk header: the size word just before the user's pointer, with flags in its low bits. */
#define MT_GLIBC_IS_MMAPPED 0x2
#define MT_GLIBC_NON_MAIN_ARENA 0x4
#define MT_GLIBC_SIZE_BITS 0x7
#define MT_GLIBC_MIN_CHUNK 32
#define MT_GLIBC_DEFAULT_MMAP_THRESHOLD (128u * 1024)
#define MT_GLIBC_MMAP_THRESHOLD_MAX (32u * 1024 * 1024)

/* The least time between two RSS samples (10 ms: at most 100 samples a second, ~2 KiB of trace). */
#define MT_RSS_SAMPLE_INTERVAL_NS 10000000ull

/* Version 3 (MT_FILE_FLAG_KEYED_BLOCKS): the key of a block is 2^MT_BLOCK_KEY_BIT + (seq mod 2^MT_BLOCK_KEY_SEQ_BITS),
 * where seq is the sequence number of the allocation that made it (of the first one, when an allocation
 * landed on a block still live: its free went unrecorded, and the block keeps its key). Keys lie above every
 * user-space address and below the reader's pool keys (top two bits set). */
#define MT_BLOCK_KEY_BIT 60
#define MT_BLOCK_KEY_SEQ_BITS 59

/* MT_RECORD_PAIRS payload (version 3; the record may carry MT_RECORD_FLAG_ZSTD, then the payload is one zstd
 * frame stating its content size, at most MT_MAX_PAIRS_PAYLOAD):
 *   v pair_count | (v size | v stack_id) * pair_count
 * Keyed allocations name their requested size and stack by index into this table (0 = the first pair). */
#define MT_MAX_PAIRS_PAYLOAD (64u << 20)

/* Limits every writer respects and every reader enforces on untrusted input. */
#define MT_MAX_STACK_DEPTH 256
#define MT_MAX_VARINT_BYTES 10
#define MT_RECORD_ALIGNMENT 8

#endif /* MALLOCTRACE_FORMAT_H */
