// A C++ program whose output must be byte-identical with and without tracing: containers, strings,
// an exception thrown and caught, operator new/delete. Prints one checksum line.
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
struct Node {
    std::string name;
    std::vector<int> values;
};

std::unique_ptr<Node> make_node(int index) {
    auto node = std::make_unique<Node>();
    node->name = "node-" + std::to_string(index);
    for (int i = 0; i <= index % 17; i++) node->values.push_back(i * index);
    return node;
}
} // namespace

int main() {
    std::map<std::string, std::unique_ptr<Node>> nodes;
    for (int i = 0; i < 5000; i++) nodes[std::to_string(i * 7919 % 5000)] = make_node(i);
    long checksum = 0;
    for (const auto &entry : nodes) {
        checksum += static_cast<long>(entry.first.size()) + static_cast<long>(entry.second->values.size());
        for (int value : entry.second->values) checksum = (checksum * 31 + value) % 1000000007;
    }
    try {
        throw std::runtime_error("expected " + std::to_string(checksum));
    } catch (const std::exception &error) {
        std::cout << "checksum " << checksum << " (" << error.what() << ")\n";
    }
    return 0;
}
