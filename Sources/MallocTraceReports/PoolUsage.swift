import MallocTraceFormat

/// The totals of the pools of one name (malloctrace_pool_create): their blocks' figures summed over their
/// stacks. Pools that share a name (one arena per request) are one entry.
public struct PoolUsage: Sendable, Equatable {
    public var name: String
    /// Pools of this name in the trace.
    public var poolCount: Int
    public var figures: SiteFigures

    /// Every pool name with blocks among `sites`, or created in the trace, by name. A pool block's stack is the
    /// reader's, with the pool's frame innermost (``PoolBlocks/frameAddress(pool:)``).
    static func make(sites: [UInt32: SiteFigures], reader: TraceReader) -> [PoolUsage] {
        func name(_ pool: UInt32) -> String { reader.pools[pool]?.name ?? "pool \(pool)" }
        var byName: [String: (pools: Set<UInt32>, figures: SiteFigures)] = [:]
        for (stackID, figures) in sites where stackID >= PoolBlocks.firstSyntheticStack {
            guard let frame = reader.stacks[stackID]?.first, let pool = PoolBlocks.pool(ofFrame: frame) else {
                continue
            }
            byName[name(pool), default: ([], SiteFigures())].figures += figures
            byName[name(pool)]?.pools.insert(pool)
        }
        for pool in reader.pools.keys { byName[name(pool), default: ([], SiteFigures())].pools.insert(pool) }
        return byName.map { PoolUsage(name: $0.key, poolCount: $0.value.pools.count, figures: $0.value.figures) }
            .sorted { $0.name < $1.name }
    }
}
