import LinliCommunity
import LinliCore
import LinliStorage

/// 工单: a problem someone reported (or an alarm opened), who handles it, and every step until the
/// reporter says it was done well. This target holds the rules of the road; storage and access
/// are elsewhere.
public enum WorkOrderCategory: String, Codable, Sendable, CaseIterable {
    case repair, complaint, noise, sanitation, security, environment, suggestion, other

    public var name: String {
        switch self {
        case .repair: "报修 Repair"
        case .complaint: "投诉 Complaint"
        case .noise: "噪音 Noise"
        case .sanitation: "环境卫生 Sanitation"
        case .security: "治安 Security"
        case .environment: "生态环境 Environment"
        case .suggestion: "建议 Suggestion"
        case .other: "其他 Other"
        }
    }

    /// How long handling may take unless the community says otherwise.
    public var defaultDeadlineHours: Int {
        switch self {
        case .security: 4
        case .noise, .sanitation: 24
        case .repair: 48
        case .complaint, .environment, .other: 72
        case .suggestion: 168
        }
    }
}

public enum WorkOrderSource: String, Codable, Sendable, CaseIterable {
    case resident, staff, grid, alarm, open311
}

public enum WorkOrderStatus: String, Codable, Sendable, CaseIterable {
    case submitted, accepted, assigned
    case inProgress = "in_progress"
    case paused, resolved, closed, returned, transferred, rejected

    /// Still someone's to do (the deadline runs).
    public var isOpen: Bool { ![.resolved, .closed, .rejected, .returned].contains(self) }
}

/// What someone does to a work order. Handlers accept, assign, grab, start, pause, resume,
/// resolve, close, return, transfer and reject; the reporter resubmits (after a return), rates
/// (closing it) and reopens; anyone handling records a return visit.
public enum WorkOrderStep: String, Codable, Sendable, CaseIterable {
    case accept, assign, grab, start, pause, resume, resolve, close
    case returnToReporter = "return"
    case resubmit, transfer, reject, rate, reopen, visit

    /// Steps only the reporter takes.
    public var isReporters: Bool { [.resubmit, .rate, .reopen].contains(self) }

    /// The status after this step from `status`, or nil when the step does not apply there.
    public func next(from status: WorkOrderStatus) -> WorkOrderStatus? {
        switch (self, status) {
        case (.accept, .submitted), (.accept, .transferred): .accepted
        case (.assign, .submitted), (.assign, .accepted), (.assign, .assigned), (.assign, .transferred),
            (.assign, .paused):
            .assigned
        case (.grab, .submitted), (.grab, .accepted), (.grab, .transferred): .assigned
        case (.start, .assigned): .inProgress
        case (.pause, .inProgress), (.pause, .assigned): .paused
        case (.resume, .paused): .inProgress
        case (.resolve, .assigned), (.resolve, .inProgress): .resolved
        case (.close, .resolved): .closed
        case (.returnToReporter, .submitted), (.returnToReporter, .accepted): .returned
        case (.resubmit, .returned): .submitted
        case (.transfer, let s) where s.isOpen: .transferred
        case (.reject, .submitted), (.reject, .accepted), (.reject, .transferred): .rejected
        case (.rate, .resolved): .closed
        case (.reopen, .resolved), (.reopen, .closed): .submitted
        case (.visit, .closed), (.visit, .resolved): status
        default: nil
        }
    }

    /// Steps that need a note (why it was returned, rejected, paused; what was done).
    public var needsNote: Bool { [.returnToReporter, .reject, .resolve, .reopen, .visit, .pause].contains(self) }
}

/// How a community routes new work orders: to a named person, the first who grabs it, or in turn
/// among a team.
public enum DispatchMode: String, Codable, Sendable, CaseIterable {
    case assign, grab
    case roundRobin = "round_robin"
}

extension WorkOrderStep {
    /// The reporter may reopen within this time of resolution.
    public static let reopenWindow: Millis = 7 * 86_400_000
}
