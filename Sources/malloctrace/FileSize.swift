import Foundation

extension FileManager {
    /// The size of the file at `path` as it stands now; nil when it cannot be read.
    func sizeOfFile(atPath path: String) -> UInt64? {
        (try? attributesOfItem(atPath: path))?[.size] as? UInt64
    }
}
