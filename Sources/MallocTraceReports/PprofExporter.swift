import MallocTraceFormat

/// Protocol buffers wire format, as much as `profile.proto` needs: varints (wire type 0) and
/// length-delimited fields (wire type 2). Zero scalars are left out, as proto3 does.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) { bytes.appendVarint(value) }

    mutating func key(_ field: Int, wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    mutating func uint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        key(field, wireType: 0)
        varint(value)
    }

    mutating func int(_ field: Int, _ value: Int64) { uint(field, UInt64(bitPattern: value)) }

    mutating func bool(_ field: Int, _ value: Bool) { uint(field, value ? 1 : 0) }

    /// A length-delimited field, always written (a repeated string may be empty).
    mutating func bytesField(_ field: Int, _ data: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(data.count))
        bytes += data
    }

    mutating func string(_ field: Int, _ text: String) { bytesField(field, Array(text.utf8)) }

    mutating func message(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        bytesField(field, inner.bytes)
    }

    /// A packed repeated varint field.
    mutating func packed(_ field: Int, _ values: [UInt64]) {
        guard !values.isEmpty else { return }
        var inner = ProtobufWriter()
        for value in values { inner.varint(value) }
        bytesField(field, inner.bytes)
    }
}

/// Writes a ``StackProfile`` as a pprof heap profile (`profile.proto`, gzip-compressed), the format of
/// `go tool pprof` and Google's `pprof`. Sample types: `alloc_objects/count`, `alloc_space/bytes`,
/// `inuse_objects/count`, `inuse_space/bytes`; in use means live at the peak, or at exit with ``InUse/exit``.
/// Each return address is one `Location` whose `Line`s are its inlined calls, innermost first.
public enum PprofExporter {
    /// Which moment the `inuse_*` sample types describe.
    public enum InUse: String, CaseIterable, Sendable {
        /// The moment of the global peak.
        case peak
        /// The end of the trace: the blocks the report counts as leaked.
        case exit
    }

    /// What a profile says about itself beyond its samples (`Profile.comment`, `time_nanos`, `duration_nanos`).
    public struct Description: Sendable {
        /// Comments, in order; a line saying what `inuse_*` means follows them.
        public var comments: [String]
        /// What `inuse_*` means; nil: as ``InUse`` says.
        public var inUseMeaning: String?
        /// When the profile was taken, nanoseconds since the epoch; nil: the process's start.
        public var time: UInt64?
        /// The time it covers; nil: the whole trace.
        public var duration: UInt64?

        public init(comments: [String], inUseMeaning: String? = nil, time: UInt64? = nil, duration: UInt64? = nil) {
            self.comments = comments
            self.inUseMeaning = inUseMeaning
            self.time = time
            self.duration = duration
        }
    }

    /// The serialized, uncompressed `Profile` message.
    public static func profile(_ profile: StackProfile, inUse: InUse = .peak, comment: String? = nil) -> [UInt8] {
        Self.profile(profile, inUse: inUse, description: Description(comments: comment.map { [$0] } ?? []))
    }

    /// The serialized, uncompressed `Profile` message, described by `description`.
    public static func profile(_ profile: StackProfile, inUse: InUse, description: Description) -> [UInt8] {
        var strings = [""]
        var stringIndex = ["": 0]
        func string(_ text: String) -> Int64 {
            if let index = stringIndex[text] { return Int64(index) }
            strings.append(text)
            stringIndex[text] = strings.count - 1
            return Int64(strings.count - 1)
        }
        var out = ProtobufWriter()
        // Profile.sample_type = 1 (ValueType: type = 1, unit = 2)
        let types = [
            ("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes"),
        ]
        for (type, unit) in types {
            let typeIndex = string(type), unitIndex = string(unit)
            out.message(1) {
                $0.int(1, typeIndex)
                $0.int(2, unitIndex)
            }
        }

        // Mappings: one per module, ids from 1.
        var mappingOfModule: [String: UInt64] = [:]
        var mappings = ProtobufWriter()
        for module in profile.modules where mappingOfModule[module.path] == nil {
            let id = UInt64(mappingOfModule.count + 1)
            mappingOfModule[module.path] = id
            let start = module.segments.map(\.start).min() ?? module.loadBias
            let limit = module.segments.map { $0.start &+ $0.size }.max() ?? start
            let fileIndex = string(module.path)
            let buildIndex = module.buildID.isEmpty ? 0 : string(module.buildIDHex)
            // Mapping: id 1, memory_start 2, memory_limit 3, file_offset 4, filename 5, build_id 6,
            // has_functions 7, has_filenames 8, has_line_numbers 9, has_inline_frames 10.
            mappings.message(3) {
                $0.uint(1, id)
                $0.uint(2, start)
                $0.uint(3, limit)
                $0.uint(4, start &- module.loadBias)
                $0.int(5, fileIndex)
                $0.int(6, buildIndex)
                $0.bool(7, true)
                $0.bool(8, true)
                $0.bool(9, true)
                $0.bool(10, true)
            }
        }

        var functionIDs: [String: UInt64] = [:]
        var functions = ProtobufWriter()
        func function(_ frame: ReportFrame?) -> UInt64 {
            let name = frame.map { $0.function ?? $0.location } ?? "(no stack recorded)"
            let file = frame?.file ?? ""
            let key = name + "\u{0}" + file
            if let id = functionIDs[key] { return id }
            let id = UInt64(functionIDs.count + 1)
            functionIDs[key] = id
            let nameIndex = string(name), fileIndex = string(file)
            // Function: id 1, name 2, system_name 3, filename 4.
            functions.message(5) {
                $0.uint(1, id)
                $0.int(2, nameIndex)
                $0.int(3, nameIndex)
                $0.int(4, fileIndex)
            }
            return id
        }

        var locationIDs: [String: UInt64] = [:]
        var locations = ProtobufWriter()
        /// `frames`: the frames of one return address, innermost (inlined) first.
        func location(_ frames: [ReportFrame]) -> UInt64 {
            let address = frames.first?.address ?? 0
            let key = "\(address) \(frames.count)"
            if let id = locationIDs[key] { return id }
            let id = UInt64(locationIDs.count + 1)
            locationIDs[key] = id
            let mapping = frames.first?.module.flatMap { mappingOfModule[$0] } ?? 0
            let lines =
                frames.isEmpty ? [(function(nil), Int64(0))] : frames.map { (function($0), Int64($0.line ?? 0)) }
            // Location: id 1, mapping_id 2, address 3, line 4 (Line: function_id 1, line 2).
            locations.message(4) {
                $0.uint(1, id)
                $0.uint(2, mapping)
                $0.uint(3, address)
                for (functionID, line) in lines {
                    $0.message(4) {
                        $0.uint(1, functionID)
                        $0.int(2, line)
                    }
                }
            }
            return id
        }

        for stack in profile.stacks {
            let figures = stack.figures
            let inUse =
                inUse == .peak
                ? (figures.peakBlocks, figures.peakBytes) : (figures.leakedBlocks, figures.leakedBytes)
            let values = [figures.allocationCalls, figures.bytesAllocated, inUse.0, inUse.1]
            guard values.contains(where: { $0 > 0 }) else { continue }
            var ids = stack.locations.map(location)
            if ids.isEmpty { ids.append(location([])) }
            // Sample: location_id 1 (packed), value 2 (packed).
            out.message(2) {
                $0.packed(1, ids)
                $0.packed(2, values.map { min($0, UInt64(Int64.max)) })
            }
        }
        var tail = ProtobufWriter()
        let commentIndices = description.comments.map(string)
        let inUseComment = string(
            description.inUseMeaning ?? (inUse == .peak ? "inuse_*: live at the peak" : "inuse_*: live at exit"))
        let periodType = (string("space"), string("bytes"))
        let defaultType = string("inuse_space")
        if let time = description.time ?? profile.process?.startRealtime { tail.uint(9, time) }
        tail.uint(10, description.duration ?? profile.durationNanoseconds)
        if let sampling = profile.sampling {
            tail.message(11) {
                $0.int(1, periodType.0)
                $0.int(2, periodType.1)
            }
            tail.uint(12, sampling.rate)
        }
        for index in commentIndices { tail.int(13, index) }
        tail.int(13, inUseComment)
        tail.int(14, defaultType)
        var result = out.bytes + mappings.bytes + locations.bytes + functions.bytes
        var table = ProtobufWriter()
        for text in strings { table.string(6, text) }
        result += table.bytes + tail.bytes
        return result
    }

    /// The gzip-compressed profile (what `pprof` reads).
    public static func compressedProfile(
        _ profile: StackProfile, inUse: InUse = .peak, comment: String? = nil
    ) throws(GzipError) -> [UInt8] {
        try Gzip.compress(Self.profile(profile, inUse: inUse, comment: comment))
    }
}
