/// The order people expect rooms in: building, then unit, then room, with the numbers in each
/// name compared as numbers. Compared as text, "1001" sorts before "101" and "10号楼" before
/// "3号楼", and a follow-up list walked floor by floor jumps about.
package enum RoomOrder {
    /// A name cut into runs of digits and of everything else: "3号楼" is [3, "号楼"].
    enum Piece: Comparable {
        case number(UInt64, digits: Int)
        case text(String)

        static func < (a: Piece, b: Piece) -> Bool {
            switch (a, b) {
            // Equal values keep a stable order by how they were written ("01" after "1").
            case (.number(let x, let dx), .number(let y, let dy)): x != y ? x < y : dx < dy
            // A number before a word, as "3号楼" before "东楼".
            case (.number, .text): true
            case (.text, .number): false
            case (.text(let x), .text(let y)): x < y
            }
        }
    }

    static func pieces(_ name: String) -> [Piece] {
        var out: [Piece] = []
        var run = ""
        var inDigits = false
        func flush() {
            guard !run.isEmpty else { return }
            // Beyond 19 digits a number no longer fits; such a "number" is compared as text.
            if inDigits, run.count <= 19, let n = UInt64(run) {
                out.append(.number(n, digits: run.count))
            } else {
                out.append(.text(run))
            }
            run = ""
        }
        for ch in name {
            let digit = ch.isASCII && ch.isNumber
            if digit != inDigits {
                flush()
                inDigits = digit
            }
            run.append(ch)
        }
        flush()
        return out
    }

    /// True when `a` comes before `b` in natural order.
    package static func precedes(_ a: String, _ b: String) -> Bool {
        let (x, y) = (pieces(a), pieces(b))
        for (p, q) in zip(x, y) where p != q { return p < q }
        return x.count < y.count
    }

    /// True when the place (building, unit, room) `a` comes before `b`.
    package static func precedes(_ a: (String, String, String), _ b: (String, String, String)) -> Bool {
        if a.0 != b.0 { return precedes(a.0, b.0) }
        if a.1 != b.1 { return precedes(a.1, b.1) }
        return precedes(a.2, b.2)
    }
}
