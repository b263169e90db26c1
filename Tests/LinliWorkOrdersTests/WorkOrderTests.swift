import Testing

@testable import LinliWorkOrders

@Suite("Work order steps")
struct WorkOrderTests {
    @Test func theUsualLifeOfAWorkOrder() {
        var status = WorkOrderStatus.submitted
        for step in [WorkOrderStep.accept, .assign, .start, .pause, .resume, .resolve, .rate] {
            guard let next = step.next(from: status) else {
                Issue.record("\(step) from \(status)")
                return
            }
            status = next
        }
        #expect(status == .closed)
        #expect(WorkOrderStep.reopen.next(from: .closed) == .submitted)
        #expect(
            WorkOrderStep.visit.next(from: .closed) == .closed, "a return visit is recorded without changing the status"
        )
    }

    @Test func stepsThatDoNotApplyAreRefused() {
        #expect(WorkOrderStep.start.next(from: .submitted) == nil, "nobody is assigned yet")
        #expect(WorkOrderStep.rate.next(from: .inProgress) == nil, "rated only once resolved")
        #expect(WorkOrderStep.resolve.next(from: .closed) == nil)
        #expect(
            WorkOrderStep.transfer.next(from: .closed) == nil
                && WorkOrderStep.transfer.next(from: .inProgress) == .transferred)
        #expect(
            WorkOrderStep.resubmit.next(from: .returned) == .submitted
                && WorkOrderStep.resubmit.next(from: .submitted) == nil)
        #expect(
            WorkOrderStep.reject.next(from: .assigned) == nil,
            "once someone has it, it is resolved or transferred, not rejected")
        // Every status can be left somehow, except the ends.
        for status in WorkOrderStatus.allCases where ![.closed, .rejected].contains(status) {
            #expect(
                WorkOrderStep.allCases.contains { $0.next(from: status) != nil && $0.next(from: status) != status },
                "\(status) is a dead end")
        }
    }

    @Test func deadlinesAndNotes() {
        #expect(WorkOrderCategory.security.defaultDeadlineHours < WorkOrderCategory.repair.defaultDeadlineHours)
        #expect(WorkOrderStep.reject.needsNote && WorkOrderStep.resolve.needsNote && !WorkOrderStep.accept.needsNote)
        #expect(Set(WorkOrderStep.allCases.filter(\.isReporters)) == [.resubmit, .rate, .reopen])
        #expect(!WorkOrderStatus.resolved.isOpen && WorkOrderStatus.paused.isOpen)
    }
}
