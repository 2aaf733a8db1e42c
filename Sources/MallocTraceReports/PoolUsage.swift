public import MallocTraceFormat

/// One pool's totals (malloctrace_pool_create): its blocks' figures summed over their stacks.
public struct PoolUsage: Sendable, Equatable {
    public var id: UInt32
    public var name: String
    public var figures: SiteFigures

    /// Every pool with blocks among `sites`, or created in the trace, by name (then id). A pool block's stack
    /// is the reader's, with the pool's frame innermost (``PoolBlocks/frameAddress(pool:)``).
    static func make(sites: [UInt32: SiteFigures], reader: TraceReader) -> [PoolUsage] {
        var byPool: [UInt32: SiteFigures] = [:]
        for (stackID, figures) in sites where stackID >= PoolBlocks.firstSyntheticStack {
            guard let frame = reader.stacks[stackID]?.first, let pool = PoolBlocks.pool(ofFrame: frame) else {
                continue
            }
            byPool[pool, default: SiteFigures()] += figures
        }
        for pool in reader.pools.keys where byPool[pool] == nil { byPool[pool] = SiteFigures() }
        return byPool.map { id, figures in
            PoolUsage(id: id, name: reader.pools[id]?.name ?? "pool \(id)", figures: figures)
        }
        .sorted { ($0.name, $0.id) < ($1.name, $1.id) }
    }
}
