import MallocTraceFormat
import MallocTraceReports
import Testing

@testable import MallocTraceCheck

@Suite struct SuppressionGeneratorTests {
    static let libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"

    /// Findings with awkward names: wildcard characters, `$`, no function at all.
    static let generatedFrom: [LeakFinding] = [
        simpleFinding("make_node"),
        finding(
            .indirect,
            [
                frame("operator new(unsigned long)", module: libstdcxx),
                frame("Matrix<int*>::operator*(Matrix<int*> const&) const", file: "/src/m.hpp", line: 40),
                frame("main", file: "/src/m.cpp", line: 9),
            ]),
        finding(
            .possible,
            [
                frame("swift_allocObject", module: "/usr/lib/swift/linux/libswiftCore.so"),
                frame("Fixture.lookup(Swift.String) -> Fixture.Node?", module: "/app/Fixture"),
                frame("Fixture.main() -> ()", module: "/app/Fixture"),
            ]),
        finding(
            allocation: .calloc, [frame(nil, module: "/usr/lib/libopaque.so", offset: 0x42), frame(nil, module: nil)]),
        finding([frame("rust_fn$LT$T$GT$", module: "/app/rusty"), frame("start", module: "/app/rusty")]),
    ]

    /// Different stacks, sharing nothing identifying with the ones above.
    static let others: [LeakFinding] = [
        simpleFinding("make_tree"),
        simpleFinding("make_node", kind: .possible).withFrames([frame("build_list"), frame("main")]),
        finding(
            .indirect,
            [
                frame("operator new(unsigned long)", module: libstdcxx),
                frame("Vector<int*>::grow()", file: "/src/v.hpp", line: 10), frame("main"),
            ]),
        finding(
            allocation: .malloc, [frame(nil, module: "/usr/lib/libopaque.so", offset: 0x42), frame(nil, module: nil)]),
        finding(allocation: .calloc, [frame(nil, module: "/usr/lib/libother.so"), frame(nil, module: nil)]),
        finding([frame("Fixture.other() -> ()", module: "/app/Fixture"), frame("Fixture.main() -> ()")]),
    ]

    @Test func generatedTextSuppressesExactlyItsFindings() throws {
        let text = SuppressionGenerator.generate(for: Self.generatedFrom)
        let set = SuppressionSet(try SuppressionParser.parse(text, path: "generated.supp"))
        for leak in Self.generatedFrom { #expect(set.firstMatch(for: leak) != nil, "\(leak.allFrames)\n\(text)") }
        for leak in Self.others { #expect(set.firstMatch(for: leak) == nil, "\(leak.allFrames)\n\(text)") }
    }

    @Test func memcheckBlockShape() {
        let block = SuppressionGenerator.memcheckBlock(for: Self.generatedFrom[1], maxFrames: 2)
        #expect(
            block == """
                # indirect leak of 48 bytes in 1 blocks from Matrix<int*>::operator*(Matrix<int*> const&) const
                {
                   malloctrace-indirect-Matrix<int*>::operator*(Matrix<int*> const&) const
                   Memcheck:Leak
                   match-leak-kinds: indirect
                   fun:operator new(unsigned long)
                   fun:Matrix<int*>::operator*(Matrix<int*> const&) const
                }

                """)
        let opaque = SuppressionGenerator.memcheckBlock(for: Self.generatedFrom[3])
        #expect(opaque.contains("   fun:calloc\n   obj:/usr/lib/libopaque.so\n   obj:*\n}"))
    }

    @Test func leakSanitizerLines() {
        let lines = Self.generatedFrom.map(SuppressionGenerator.leakSanitizerLine)
        #expect(
            lines == [
                "leak:^make_node$", "leak:^Matrix<int*>::operator*(Matrix<int*> const&) const$",
                "leak:^Fixture.lookup(Swift.String) -> Fixture.Node?$", nil, "leak:^rust_fn",
            ])
    }
}

extension LeakFinding {
    func withFrames(_ frames: [ReportFrame]) -> LeakFinding {
        var copy = self
        copy.frames = AllocatorFrames.fold(frames)
        copy.allFrames = frames
        return copy
    }
}
