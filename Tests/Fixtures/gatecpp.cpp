// A C++ program that uses the standard library the usual way (iostream, strings, containers, an exception
// thrown and caught, a thread, a function-local static, a global container) and owns nothing at exit.
// Usage: fixture-gatecpp clean   `malloctrace check` must find nothing (libstdc++'s pool is reachable)
//        fixture-gatecpp leak    the same plus one leaked `new int[25]` (100 B, MARK:gatecpp-leak)
#include <cstring>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static std::vector<std::string> g_names = {"a long enough string to live on the heap", "b"};

static const std::string &greeting() {
    static const std::string text = "a function-local static string long enough for the heap";
    return text;
}

__attribute__((noinline)) static void leakOne() {
    int *lost = new int[25];            // MARK:gatecpp-leak
    __asm__ volatile("" : : "r"(lost)); // the call stays; the only pointer dies with this frame
}

int main(int argc, char **argv) {
    std::map<std::string, int> counts;
    std::unordered_map<int, std::vector<int>> buckets;
    for (int i = 0; i < 100; i++) {
        counts["key number " + std::to_string(i % 7)] += i;
        buckets[i % 5].push_back(i);
    }
    try {
        throw std::runtime_error("an exception with a message long enough to be allocated");
    } catch (const std::exception &error) {
        counts[error.what()] = 1;
    }
    std::thread worker([] { std::vector<int> numbers(1000, 7); });
    worker.join();
    std::cout << greeting().size() << " " << counts.size() << " " << buckets.size() << " " << g_names.size()
              << std::endl;
    if (argc > 1 && std::strcmp(argv[1], "leak") == 0) leakOne();
    return 0;
}
