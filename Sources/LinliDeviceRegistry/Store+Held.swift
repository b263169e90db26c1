import LinliCommunity
import LinliCore
import LinliStorage
import LinliThings

extension Store {
    /// Shadow values and device counters the telemetry writer has stored in history but not yet
    /// written to their tables; readers of those tables add them.
    public var heldTelemetry: HeldTelemetry { attachments.shared { HeldTelemetry() } }
    /// Devices' online and offline changes, committed together when many come at once.
    package var statusChanges: CommitQueue<StatusChange> { attachments.shared { CommitQueue<StatusChange>() } }
}
