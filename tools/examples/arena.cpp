// The control API's example (docs/api.md): a bump arena annotated with malloctrace.h.
//
// A tiny request handler gives every request an arena that dies with the request, and keeps its settings in
// a "config" arena that nobody ever destroys. Traced, the report lists per-arena usage in its summary
// ("pools"), shows arena blocks as "[pool NAME]" frames with the stacks that allocated them, and reports
// the config arena's blocks as leaks; the backing chunks the arenas carve from are counted once. Marks bound
// each request (report --from-mark request-2 --to-mark request-3) and a snapshot names the live set after the
// first request (diff TRACE@after-first TRACE@after-all). Untraced, it prints the same and runs as fast.
//
//   clang++ -std=c++17 -O2 -g -I Sources/CMallocTraceAPI/include tools/examples/arena.cpp -o arena
//   malloctrace run -- ./arena && malloctrace report malloctrace.arena.*.mtrace --sections summary,leaks
#include "malloctrace.h"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

// Memory comes from malloc in chunks; objects are carved from the current chunk and never freed one by one.
class Arena {
  public:
    explicit Arena(const char *name, std::size_t chunkSize = 16 * 1024)
        : pool_(malloctrace_pool_create(name)), chunkSize_(chunkSize) {}
    Arena(const Arena &) = delete;
    Arena &operator=(const Arena &) = delete;

    ~Arena() {
        malloctrace_pool_destroy(pool_); // every block at once, before the chunks go back to malloc
        for (void *chunk : chunks_) std::free(chunk);
    }

    void *allocate(std::size_t size, std::size_t alignment = alignof(std::max_align_t)) {
        std::size_t start = (used_ + alignment - 1) & ~(alignment - 1);
        if (chunks_.empty() || start + size > capacity_) {
            newChunk(size > chunkSize_ ? size : chunkSize_);
            start = 0;
        }
        void *block = static_cast<char *>(chunks_.back()) + start;
        used_ = start + size;
        malloctrace_pool_alloc(pool_, block, size);
        return block;
    }

    template <class T, class... Arguments> T *make(Arguments &&...arguments) {
        return new (allocate(sizeof(T), alignof(T))) T(std::forward<Arguments>(arguments)...);
    }

    char *copy(const char *text) {
        std::size_t length = std::strlen(text) + 1;
        return static_cast<char *>(std::memcpy(allocate(length, 1), text, length));
    }

  private:
    void newChunk(std::size_t size) {
        void *chunk = std::malloc(size);
        if (chunk == nullptr) throw std::bad_alloc();
        malloctrace_pool_backing(pool_, chunk); // the pool's blocks are this chunk's bytes: counted once
        chunks_.push_back(chunk);
        capacity_ = size;
        used_ = 0;
    }

    malloctrace_pool_t pool_;
    std::size_t chunkSize_;
    std::vector<void *> chunks_;
    std::size_t capacity_ = 0, used_ = 0;
};

struct Setting {
    const char *key;
    const char *value;
    Setting *next;
};

struct Header {
    const char *name;
    const char *value;
};

// Settings live as long as the program: in an arena that is never destroyed (the leak the report shows).
static Setting *loadSettings(Arena &arena) {
    Setting *first = nullptr;
    char key[32], value[64];
    for (int i = 0; i < 40; i++) {
        std::snprintf(key, sizeof key, "setting.%d", i);
        std::snprintf(value, sizeof value, "value-%d", i * 7);
        first = arena.make<Setting>(Setting{arena.copy(key), arena.copy(value), first});
    }
    return first;
}

static unsigned long handleRequest(int number, const Setting *settings) {
    Arena arena("request");
    std::vector<Header *> headers;
    char text[64];
    for (int i = 0; i < 200 + number * 100; i++) {
        std::snprintf(text, sizeof text, "x-header-%d", i);
        headers.push_back(arena.make<Header>(Header{arena.copy(text), settings->value}));
    }
    unsigned long checksum = 0;
    for (const Header *header : headers) checksum = checksum * 31 + std::strlen(header->name);
    return checksum;
}

int main() {
    Arena *config = new Arena("config"); // never deleted: its blocks are reported as leaks
    const Setting *settings = loadSettings(*config);
    unsigned long checksum = 0;
    for (int request = 1; request <= 3; request++) {
        std::string mark = "request-" + std::to_string(request);
        malloctrace_mark(mark.c_str());
        checksum ^= handleRequest(request, settings);
        if (request == 1) malloctrace_snapshot("after-first");
    }
    malloctrace_mark("done");
    malloctrace_snapshot("after-all");
    std::printf("handled 3 requests, checksum %lu\n", checksum);
    return 0;
}
