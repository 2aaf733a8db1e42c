import Foundation

/// Finds separate debug files the way gdb and llvm-symbolizer do: by GNU build-id under
/// `DIR/.build-id/ab/cdef….debug`, and by the `.gnu_debuglink` name next to the file, in its `.debug`
/// folder, or under `DIR/` + the file's folder. `DIR` is `/usr/lib/debug` unless told otherwise.
public struct DebugFiles: Sendable {
    public var directories: [String]

    public init(directories: [String] = ["/usr/lib/debug"]) {
        self.directories = directories
    }

    /// The debug file named by `buildID`, if one exists.
    public func file(buildID: [UInt8]) -> String? {
        guard buildID.count >= 2 else { return nil }
        let hex = buildID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let name = ".build-id/\(hex.prefix(2))/\(hex.dropFirst(2)).debug"
        return directories.map { $0 + "/" + name }.first { FileManager.default.isReadableFile(atPath: $0) }
    }

    /// The debug file for the object at `path` with `.gnu_debuglink` name `link`, if one exists. A candidate
    /// whose build-id differs from `buildID` (when both have one) is skipped.
    public func file(linkedFrom path: String, link: String, buildID: [UInt8]) -> String? {
        guard !link.isEmpty, !link.contains("/") else { return nil }
        let folder = (URL(fileURLWithPath: path).resolvingSymlinksInPath().path as NSString).deletingLastPathComponent
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        var candidates = [folder + "/" + link, folder + "/.debug/" + link]
        candidates += directories.map { $0 + folder + "/" + link }
        return candidates.first { candidate in
            guard candidate != resolved, let info = ELFFileInfo(path: candidate) else { return false }
            return buildID.isEmpty || info.buildID.isEmpty || info.buildID == buildID
        }
    }
}
