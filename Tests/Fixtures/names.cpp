// C++ names as reports must show them: an anonymous namespace, a class template with a non-type argument,
// operator new[] and std::vector growth (allocator frames the report folds away).
// Leaks: 3 x new Widget[16] (3 x 1024 B) from Pool<Widget, 3>::grow(), the Pool itself (24 B) from
// app::leak_widgets(), and the vector's last buffer (4 pointers, 32 B).
#include <vector>

namespace {
struct Widget {
    double values[8];
};

template <typename T, int N> struct Pool {
    std::vector<T *> blocks;

    __attribute__((noinline)) void grow() {
        for (int i = 0; i < N; i++) blocks.push_back(new T[16]);
    }
};
} // namespace

namespace app {
__attribute__((noinline)) void leak_widgets() {
    auto *pool = new Pool<Widget, 3>();
    pool->grow();
}
} // namespace app

int main() {
    app::leak_widgets();
    return 0;
}
