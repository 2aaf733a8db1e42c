import Foundation
import Testing

@testable import MallocTraceSymbolication

@Suite struct DemanglerTests {
    @Test(arguments: [
        ("_Znwm", "operator new(unsigned long)"),
        ("_Znwm@@GLIBCXX_3.4", "operator new(unsigned long)"),
        ("_ZdlPv@GLIBCXX_3.4", "operator delete(void*)"),
        (
            "_ZN12_GLOBAL__N_14PoolINS_6WidgetELi3EE4growEv",
            "(anonymous namespace)::Pool<(anonymous namespace)::Widget, 3>::grow()"
        ),
        ("_Z3foov.cold", "foo() [clone .cold]"),
        ("$s7Fixture9leakNodes5countySi_tF", "Fixture.leakNodes(count: Swift.Int) -> ()"),
        ("_$s7Fixture9leakNodes5countySi_tF", "Fixture.leakNodes(count: Swift.Int) -> ()"),
        ("_ZN3std2rt10lang_start17h0123456789abcdefE", "std::rt::lang_start"),
        (
            "_ZN66_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE",
            "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"
        ),
        ("malloc", "malloc"),
        ("memcpy@GLIBC_2.14", "memcpy"),
        ("_Zgarbage", "_Zgarbage"),
        ("$snotswift", "$snotswift"),
        ("_RNvCs1234_7mycrate3foo", "_RNvCs1234_7mycrate3foo"),
    ])
    func demangles(mangled: String, expected: String) {
        #expect(Demangler.demangle(mangled) == expected)
    }
}

@Suite struct LLVMSymbolizerAnswerTests {
    private func parse(_ line: String) -> Result<[SourceFrame], LLVMSymbolizer.Failure> {
        LLVMSymbolizer.parse(Array(line.utf8))
    }

    @Test func inlinedFramesComeInnermostFirst() throws {
        let answer = parse(
            #"{"Address":"0x698","ModuleName":"/tmp/inl","Symbol":[{"Column":47,"Discriminator":0,"FileName":"/tmp/inl.c","FunctionName":"helper","Line":3,"StartAddress":"0x691","StartFileName":"/tmp/inl.c","StartLine":3},{"Column":61,"Discriminator":0,"FileName":"/tmp/inl.c","FunctionName":"_Z5outerm","Line":4,"StartAddress":"0x690","StartFileName":"/tmp/inl.c","StartLine":4}]}"#
        )
        let frames = try answer.get()
        #expect(
            frames == [
                SourceFrame(function: "helper", file: "/tmp/inl.c", line: 3, isInlined: true),
                SourceFrame(function: "outer(unsigned long)", file: "/tmp/inl.c", line: 4, isInlined: false),
            ])
    }

    @Test func unknownAnswersAreEmptyOrErrors() throws {
        let unknown = parse(
            #"{"Address":"0x837","ModuleName":"/x","Symbol":[{"Column":0,"Discriminator":0,"FileName":"","FunctionName":"","Line":0,"StartAddress":"","StartFileName":"","StartLine":0}]}"#
        )
        #expect(try unknown.get().isEmpty)
        let nameOnly = try parse(
            #"{"Address":"0x850","ModuleName":"/x","Symbol":[{"FileName":"","FunctionName":"main","Line":0}]}"#
        ).get()
        #expect(nameOnly == [SourceFrame(function: "main")])
        let error = parse(#"{"Address":"0x10","Error":{"Message":"No such file or directory"},"ModuleName":"/none"}"#)
        #expect(throws: LLVMSymbolizer.Failure.self) { try error.get() }
        #expect(throws: LLVMSymbolizer.Failure.self) { try parse("not json").get() }
    }

    @Test func pathsThatCannotBeQuotedAreRefused() {
        #expect(LLVMSymbolizer.request(module: "/a b/c", address: 0x10) == "\"/a b/c\" 0x10\n")
        #expect(LLVMSymbolizer.request(module: "/a\"b", address: 0x10) == nil)
        #expect(LLVMSymbolizer.request(module: "/a\nb", address: 0x10) == nil)
    }
}

@Suite struct SymbolizerLocatorTests {
    @Test func environmentChoosesOrDisables() throws {
        let off = SymbolizerLocator.locate(environment: ["MALLOCTRACE_SYMBOLIZER": "none", "PATH": "/usr/bin"])
        #expect(off.path == nil)
        #expect(off.note?.contains("turned it off") == true)
        let missing = SymbolizerLocator.locate(environment: ["MALLOCTRACE_SYMBOLIZER": "/nonexistent/llvm-symbolizer"])
        #expect(missing.path == nil)
        #expect(missing.note?.contains("not an executable") == true)
        let chosen = SymbolizerLocator.locate(environment: ["MALLOCTRACE_SYMBOLIZER": "/bin/true"])
        #expect(chosen.path == "/bin/true")
    }

    @Test func newestVersionedNameWins() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("locator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["llvm-symbolizer-9", "llvm-symbolizer-14", "llvm-symbolizer-15.txt", "llvm-symbolizer-11"] {
            let path = directory.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        #expect(SymbolizerLocator.newestVersioned(in: [directory.path]) == directory.path + "/llvm-symbolizer-14")
        // The toolchain's (statically linked, a third of the memory) comes before anything on PATH.
        let found = SymbolizerLocator.locate(environment: ["PATH": directory.path])
        #expect(found.path == SymbolizerLocator.toolchainSymbolizer() ?? directory.path + "/llvm-symbolizer-14")
    }

    /// A program with the Swift runtime linked in (`dladdr` names the program, not libswiftCore.so) takes the
    /// llvm-symbolizer beside the `swift` on PATH, through its symbolic link, before any other.
    @Test func aProgramWithTheRuntimeLinkedInFindsTheToolchainThroughSwiftOnPath() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("toolchain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let toolchainBin = root.appendingPathComponent("toolchain/usr/bin")
        let pathBin = root.appendingPathComponent("bin")
        for directory in [toolchainBin, pathBin] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        for name in ["swift", "llvm-symbolizer"] {
            let path = toolchainBin.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        try FileManager.default.createSymbolicLink(
            atPath: pathBin.appendingPathComponent("swift").path,
            withDestinationPath: toolchainBin.appendingPathComponent("swift").path)
        let program = root.appendingPathComponent("malloctrace").path
        let expected = toolchainBin.appendingPathComponent("llvm-symbolizer").resolvingSymlinksInPath().path
        #expect(
            SymbolizerLocator.toolchainSymbolizer(runtimeLibrary: program, searchPath: [pathBin.path]).map {
                URL(fileURLWithPath: $0).resolvingSymlinksInPath().path
            } == expected)
        #expect(SymbolizerLocator.toolchainSymbolizer(runtimeLibrary: program, searchPath: [root.path]) == nil)
        #expect(SymbolizerLocator.toolchainSymbolizer(runtimeLibrary: nil, searchPath: []) == nil)
    }

    @Test func theSwiftToolchainHasOne() {
        // The tests run on a Swift toolchain, whose bin folder ships llvm-symbolizer.
        #expect(SymbolizerLocator.toolchainSymbolizer()?.hasSuffix("/llvm-symbolizer") == true)
    }
}
