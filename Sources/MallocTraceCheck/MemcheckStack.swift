import MallocTraceFormat
import MallocTraceReports

/// A leak's stack as valgrind memcheck would print it, for matching memcheck suppressions.
///
/// Frame 0 of a memcheck leak is the allocation function itself, inside valgrind's preload object
/// (`fun:malloc` / `obj:*vgpreload_memcheck*`), or `operator new` when C++ allocated; the tracer's stacks
/// start at the caller of malloc. So the stack is: the tracer's own frames dropped, then either the
/// leading `operator new…` frame (which valgrind replaces, so it becomes frame 0) or a synthetic frame named
/// after ``LeakFinding/allocationFunction`` (`malloc` when unknown), then every other frame, inlined calls
/// included (as valgrind's `--read-inline-info=yes` shows them).
///
/// Limitation: frames carry demangled names only. `fun:` patterns match the demangled name (valgrind
/// matches demangled names too unless run with `--demangle=no`); mangled patterns (`fun:_Znwm`) match only
/// the `operator new`/`operator new[]` variants and C functions, whose mangled names are derived here.
public enum MemcheckStack {
    /// Where valgrind's replacement allocator lives; `obj:*vgpreload*` patterns match it.
    public static let preloadObject = "/usr/libexec/valgrind/vgpreload_memcheck-amd64-linux.so"

    /// One frame in valgrind's terms.
    public struct Frame: Sendable, Equatable {
        public var function: String?
        /// Other names the function goes by in suppressions (its mangled name, when known).
        public var mangledNames: [String]
        public var object: String?
        public var file: String?
        public var line: Int?

        public init(function: String?, mangledNames: [String] = [], object: String?, file: String?, line: Int?) {
            self.function = function
            self.mangledNames = mangledNames
            self.object = object
            self.file = file
            self.line = line
        }

        init(_ frame: ReportFrame) {
            self.init(
                function: frame.function, mangledNames: MemcheckStack.mangledNames(of: frame.function),
                object: frame.module, file: frame.file, line: frame.line)
        }
    }

    /// The valgrind-style stack of `finding`, innermost first. O(frames).
    public static func frames(of finding: LeakFinding) -> [Frame] {
        var rest = finding.allFrames[...].drop(while: isTracerFrame)
        var first: Frame
        // libstdc++'s `operator new[]` calls `operator new`: valgrind replaces the outer one the program
        // called, so the last of the leading run is frame 0.
        let leadingNew = rest.prefix { $0.function?.hasPrefix("operator new") ?? false }
        if let leading = leadingNew.last {
            first = Frame(leading)
            rest = rest.dropFirst(leadingNew.count)
            // libstdc++'s `operator new[]` ends in a tail call to `operator new`, so a stack never shows it:
            // frame 0 also answers to the array form's names, as valgrind (which sees the call) would print.
            if let function = first.function, function.hasPrefix("operator new(") {
                let array = "operator new[](" + function.dropFirst("operator new(".count)
                first.mangledNames += [array] + mangledNames(of: array)
            }
        } else {
            let name = finding.allocationFunction?.description ?? "malloc"
            first = Frame(function: name, object: nil, file: nil, line: nil)
        }
        first.object = preloadObject
        first.file = nil
        first.line = nil
        return [first] + rest.map(Frame.init)
    }

    static func isTracerFrame(_ frame: ReportFrame) -> Bool {
        frame.moduleName?.hasPrefix("libmalloctrace") ?? false
    }

    /// Itanium mangled names of the replaceable `operator new` forms (x86-64: size_t is `m`).
    static let mangledOperatorNew: [String: String] = [
        "operator new(unsigned long)": "_Znwm",
        "operator new[](unsigned long)": "_Znam",
        "operator new(unsigned long, std::nothrow_t const&)": "_ZnwmRKSt9nothrow_t",
        "operator new[](unsigned long, std::nothrow_t const&)": "_ZnamRKSt9nothrow_t",
        "operator new(unsigned long, std::align_val_t)": "_ZnwmSt11align_val_t",
        "operator new[](unsigned long, std::align_val_t)": "_ZnamSt11align_val_t",
        "operator new(unsigned long, std::align_val_t, std::nothrow_t const&)": "_ZnwmSt11align_val_tRKSt9nothrow_t",
        "operator new[](unsigned long, std::align_val_t, std::nothrow_t const&)": "_ZnamSt11align_val_tRKSt9nothrow_t",
    ]

    /// What a `fun:` pattern may name besides the demangled name: the `operator new` manglings above. A C
    /// function's mangled name is its name, already covered.
    static func mangledNames(of function: String?) -> [String] {
        guard let function, let mangled = mangledOperatorNew[function] else { return [] }
        return [mangled]
    }
}
