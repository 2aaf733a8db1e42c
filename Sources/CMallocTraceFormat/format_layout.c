/* Compile-time proof that the record layouts in malloctrace_format.h are the bytes the spec draws. */
#include <stddef.h>

#include "malloctrace_format.h"

_Static_assert(sizeof(mt_file_header_t) == 16, "file header is 16 bytes");
_Static_assert(offsetof(mt_file_header_t, version) == 8, "version follows the magic");
_Static_assert(offsetof(mt_file_header_t, header_size) == 10, "header_size at 10");
_Static_assert(sizeof(mt_record_header_t) == 8, "record header is 8 bytes");
_Static_assert(offsetof(mt_record_header_t, length) == 4, "record length at 4");
_Static_assert(sizeof(mt_record_header_t) % MT_RECORD_ALIGNMENT == 0, "records stay aligned");
_Static_assert(sizeof(mt_process_record_t) == 48, "process record is 48 bytes");
_Static_assert(offsetof(mt_process_record_t, start_realtime_ns) == 8, "start_realtime_ns at 8");
_Static_assert(offsetof(mt_process_record_t, start_monotonic_ns) == 16, "start_monotonic_ns at 16");
_Static_assert(offsetof(mt_process_record_t, page_size) == 24, "page_size at 24");
_Static_assert(offsetof(mt_process_record_t, exe_length) == 36, "exe_length at 36");
_Static_assert(offsetof(mt_process_record_t, argv_length) == 40, "argv_length at 40");
_Static_assert(sizeof(mt_chunk_header_t) == 8, "chunk header is 8 bytes");
_Static_assert(offsetof(mt_chunk_header_t, used) == 4, "used at 4");
_Static_assert(sizeof(mt_end_record_t) == 24, "end record is 24 bytes");
_Static_assert(offsetof(mt_end_record_t, exit_status) == 16, "exit_status at 16");
_Static_assert(MT_RECORD_FLAG_ZSTD <= 0xff, "record flags fit the u8 flags field");
_Static_assert(MT_FORMAT_VERSION_UNCOMPRESSED <= MT_FORMAT_VERSION, "readers read what the library writes");
_Static_assert(MT_MAX_DECOMPRESSED_CHUNK + sizeof(mt_chunk_header_t) <= UINT32_MAX, "used fits in u32");
_Static_assert(sizeof(mt_leak_scan_record_t) == 48, "leak scan record is 48 bytes");
_Static_assert(offsetof(mt_leak_scan_record_t, part) == 16, "part at 16");
_Static_assert(offsetof(mt_leak_scan_record_t, duration_ns) == 32, "duration_ns at 32");
_Static_assert(offsetof(mt_leak_scan_record_t, total_blocks) == 44, "total_blocks at 44");
_Static_assert(sizeof(mt_process_stats_record_t) == 48, "process stats record is 48 bytes");
_Static_assert(offsetof(mt_process_stats_record_t, peak_rss_bytes) == 8, "peak_rss_bytes at 8");
_Static_assert(offsetof(mt_process_stats_record_t, rss_bytes) == 16, "rss_bytes at 16");
_Static_assert(offsetof(mt_process_stats_record_t, brk_bytes) == 24, "brk_bytes at 24");
_Static_assert(offsetof(mt_process_stats_record_t, start_break) == 32, "start_break at 32");
_Static_assert(offsetof(mt_process_stats_record_t, how) == 40, "how at 40");
_Static_assert(MT_EVENT_RSS_SAMPLE >= MT_EVENT_FIRST_SIZED, "older readers skip RSS samples by length");
_Static_assert(sizeof(mt_allocator_record_t) == 32, "allocator record is 32 bytes");
_Static_assert(offsetof(mt_allocator_record_t, features) == 4, "features at 4");
_Static_assert(offsetof(mt_allocator_record_t, mmap_threshold) == 16, "mmap_threshold at 16");
_Static_assert(offsetof(mt_allocator_record_t, threshold_is_dynamic) == 24, "threshold_is_dynamic at 24");
_Static_assert(MT_EVENT_CHUNK_INFO >= MT_EVENT_FIRST_SIZED && MT_EVENT_MALLOPT >= MT_EVENT_FIRST_SIZED,
               "older readers skip the allocator's events by length");
_Static_assert(sizeof(mt_index_record_t) == 24, "index record is 24 bytes");
_Static_assert(offsetof(mt_index_record_t, payload_checksum) == 4, "payload_checksum at 4");
_Static_assert(offsetof(mt_index_record_t, covered_bytes) == 8, "covered_bytes at 8");
_Static_assert(offsetof(mt_index_record_t, checksum) == 16, "checksum at 16");
_Static_assert(MT_EVENT_POOL_CREATE >= MT_EVENT_FIRST_SIZED && MT_EVENT_SNAPSHOT <= 0x8F,
               "the control API's events are sized (older readers skip them) and within 0x88-0x8F");
_Static_assert(MT_EVENT_SNAPSHOT - MT_EVENT_POOL_CREATE == 7, "eight control events, 0x88-0x8F");
