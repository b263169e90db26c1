import Foundation
import LinliCore
import Synchronization

/// Something to do that a community's first page shows: how many, and the list that holds them.
package struct OverviewTodo: Sendable {
    /// Names it in the page (`todo-{id}`), for people's bookmarks and for tests.
    package var id: String
    package var label: String
    package var count: Int
    package var link: String
    /// Shown as pressing while it is not zero: alarms nobody acknowledged, work past its deadline.
    package var urgent: Bool
    /// Urgent and not zero. Stored, as templates see only stored properties.
    package var pressing: Bool

    package init(id: String, label: String, count: Int, link: String, urgent: Bool = false) {
        self.id = id
        self.label = label
        self.count = count
        self.link = link
        self.urgent = urgent
        pressing = urgent && count > 0
    }
}

/// A bar chart a module draws on the community's first page, as SVG made on the server (no script
/// is needed to read it; each bar's value is in its `<title>`, shown on hover).
package struct OverviewChart: Sendable {
    package struct Bar: Sendable {
        package var label: String
        package var value: Int
        /// The list behind the bar; empty for none.
        package var link: String
        package init(_ label: String, _ value: Int, link: String = "") {
            self.label = label
            self.value = value
            self.link = link
        }
    }

    package var id: String
    package var title: String
    /// The unit of the values, in the page's language ("户", "条").
    package var unit: String
    package var bars: [Bar]

    package init(id: String, title: String, unit: String, bars: [Bar]) {
        self.id = id
        self.title = title
        self.unit = unit
        self.bars = bars
    }

}

/// What the template draws of a chart: one row per bar, the label on the left, the bar scaled to
/// the largest value, the value after it; whole SVG units, so the page is the same on every run.
package struct ChartView: Sendable {
    package struct Row: Sendable {
        package var label: String
        package var value: Int
        package var title: String
        package var link: String
        package var hasLink: Bool
        package var y: Int
        package var textY: Int
        package var width: Int
        package var valueX: Int
    }

    package var id: String
    package var title: String
    package var rows: [Row]
    package var height: Int
    package var empty: Bool
    /// Where the bars start, and the drawing's width, in SVG units: about the pixels of a chart in
    /// the page's grid, so that its text shows at the page's size.
    package var barX = ChartView.labelWidth
    package var width = ChartView.labelWidth + ChartView.barSpace + 56
    static let labelWidth = 96
    static let barSpace = 200
    static let rowHeight = 28

    package init(_ chart: OverviewChart) {
        id = chart.id
        title = chart.title
        let largest = max(1, chart.bars.map(\.value).max() ?? 1)
        rows = chart.bars.enumerated().map { i, bar in
            // A value above zero always shows as a sliver, so that "1" is not read as "none".
            let width = bar.value == 0 ? 0 : max(3, bar.value * Self.barSpace / largest)
            let y = i * Self.rowHeight + 4
            return Row(
                label: bar.label, value: bar.value, title: "\(bar.label)：\(bar.value) \(chart.unit)", link: bar.link,
                hasLink: !bar.link.isEmpty, y: y, textY: y + 15, width: width, valueX: Self.labelWidth + width + 6)
        }
        height = max(1, chart.bars.count) * Self.rowHeight + 8
        empty = chart.bars.allSatisfy { $0.value == 0 }
    }
}

/// A module's part of a community's first page. The community module draws the page and knows
/// no other module, so each adds its part when it is registered; a part shows only what the
/// caller may see, and nothing (no to-dos, no charts) when the caller may see none of it.
package protocol OverviewPart: Sendable {
    func overview(community: Community, context: AppContext, services: AppServices) async throws -> (
        todos: [OverviewTodo], charts: [OverviewChart]
    )
}

/// The parts, in the order the modules were registered.
package final class OverviewParts: Sendable {
    private let parts = Mutex<[any OverviewPart]>([])
    package init() {}
    /// Adds `part`, once: an application built twice on the same services keeps one of each.
    package func add(_ part: any OverviewPart) {
        parts.withLock { parts in
            if !parts.contains(where: { type(of: $0) == type(of: part) }) { parts.append(part) }
        }
    }
    package var all: [any OverviewPart] { parts.withLock { $0 } }
}

extension AppServices {
    /// What the modules add to a community's first page.
    package var overviewParts: OverviewParts { attachments.shared { OverviewParts() } }
}

extension Calendar {
    /// Days as the community counts them: Beijing time, whatever the server's zone.
    package static var community: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        return calendar
    }
}
