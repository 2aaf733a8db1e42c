import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension Symbolizer {
    /// Everything outside the trace that decides how this symbolizer resolves addresses in `modules` (path
    /// and build-id as the trace names them), as one string: the backend and the identity (device, inode,
    /// size, modification time) of the llvm-symbolizer, of each module's file, of the debug file its build-id
    /// names, and of the folders where a debug file could appear (so that one installed later changes it).
    /// Equal strings mean an earlier symbolization of those modules can be reused as it is: a stored
    /// analysis keeps the frames it printed with this, and a report uses them only when it matches.
    /// O(modules) `stat` calls; nothing is read or started.
    public func inputsFingerprint(modules: [(path: String, buildID: [UInt8])]) -> String {
        var parts = [backendDescription, "symbolizer " + (symbolizerPath.map(Self.identity) ?? "-")]
        let debugDirectories = debugFiles.directories
        parts.append("debug " + debugDirectories.map { $0 + "=" + Self.identity($0) }.joined(separator: ","))
        var byKey: [String: (path: String, buildID: [UInt8])] = [:]
        for module in modules {
            byKey[module.path + " " + module.buildID.map { String($0, radix: 16) }.joined(separator: ".")] = module
        }
        for (key, (path, buildID)) in byKey.sorted(by: { $0.key < $1.key }) {
            let folder = (path as NSString).deletingLastPathComponent
            var folders = [folder, folder + "/.debug"]
            folders += debugDirectories.map { $0 + folder }
            if buildID.count >= 2 {
                let hex = buildID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
                folders += debugDirectories.map { $0 + "/.build-id/" + hex.prefix(2) }
            }
            let debugFile = debugFiles.file(buildID: buildID).map(Self.identity) ?? "-"
            parts.append(
                "module \(key) \(Self.identity(path)) debug \(debugFile) folders "
                    + folders.map(Self.identity).joined(separator: ","))
        }
        return parts.joined(separator: "\n")
    }

    /// `device:inode:size:mtime` of the file `path` leads to, or `-` when there is none.
    static func identity(_ path: String) -> String {
        var status = stat()
        guard stat(path, &status) == 0 else { return "-" }
        return "\(status.st_dev):\(status.st_ino):\(status.st_size):\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
    }
}
