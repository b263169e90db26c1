import Foundation

/// One reason a piece of input was refused, naming the field at fault.
public struct FieldIssue: Error, Sendable, Equatable, Codable {
    public var field: String
    public var reason: String
    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }
}

/// Input that failed validation: every issue found, not only the first.
public struct ValidationFailure: Error, Sendable, Equatable {
    public var issues: [FieldIssue]
    public init(_ issues: [FieldIssue]) { self.issues = issues }
    public init(_ field: String, _ reason: String) { self.issues = [FieldIssue(field, reason)] }
}

/// Collects issues while checking a whole input, then throws them together.
public struct Validator: Sendable {
    public private(set) var issues: [FieldIssue] = []
    public init() {}

    public mutating func add(_ field: String, _ reason: String) { issues.append(FieldIssue(field, reason)) }

    /// A required text: trimmed, non-empty, at most `max` characters.
    @discardableResult
    public mutating func text(_ value: String?, _ field: String, max: Int = 200, required: Bool = true) -> String? {
        guard let raw = value else {
            if required { add(field, "is required") }
            return nil
        }
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            if required { add(field, "must not be empty") }
            return nil
        }
        if trimmed.count > max {
            add(field, "must be at most \(max) characters")
            return nil
        }
        if trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            add(field, "must not contain control characters")
            return nil
        }
        return trimmed
    }

    public mutating func number<T: Comparable>(
        _ value: T?, _ field: String, in range: ClosedRange<T>, required: Bool = false
    ) {
        guard let value else {
            if required { add(field, "is required") }
            return
        }
        if !range.contains(value) { add(field, "must be between \(range.lowerBound) and \(range.upperBound)") }
    }

    public mutating func day(_ value: String?, _ field: String) {
        guard let value, !value.isEmpty else { return }
        if !Day.isValid(value) { add(field, "must be a date written YYYY-MM-DD") }
    }

    public mutating func phone(_ value: String?, _ field: String) {
        guard let value, !value.isEmpty else { return }
        let digits = value.filter { $0 != "-" && $0 != " " && $0 != "+" }
        if digits.count < 5 || digits.count > 20 || !digits.allSatisfy(\.isASCII) || !digits.allSatisfy(\.isNumber) {
            add(field, "must be a phone number of 5 to 20 digits")
        }
    }

    public func check() throws(ValidationFailure) {
        if !issues.isEmpty { throw ValidationFailure(issues) }
    }
}

/// Mainland China resident identity card numbers (GB 11643): 17 digits and a check character.
public enum IdentityNumber {
    public static func isValid(_ value: String) -> Bool {
        let chars = Array(value.uppercased())
        guard chars.count == 18 else { return false }
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        var sum = 0
        for i in 0..<17 {
            guard let d = chars[i].wholeNumberValue, chars[i].isASCII else { return false }
            sum += d * weights[i]
        }
        let checks: [Character] = ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"]
        return checks[sum % 11] == chars[17]
    }

    /// Shown to everyone who may see the person but not the full number: region and last four.
    public static func masked(_ value: String) -> String {
        let chars = Array(value)
        guard chars.count > 8 else { return String(repeating: "*", count: chars.count) }
        return String(chars.prefix(4)) + String(repeating: "*", count: chars.count - 8) + String(chars.suffix(4))
    }

    /// Builds a valid number from its first 17 digits (used by the demo generator).
    public static func withCheckDigit(_ first17: String) -> String {
        let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        let digits = first17.compactMap(\.wholeNumberValue)
        let sum = zip(digits, weights).map(*).reduce(0, +)
        let checks: [Character] = ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"]
        return first17 + String(checks[sum % 11])
    }
}

public enum PhoneNumber {
    public static func masked(_ value: String) -> String {
        let chars = Array(value)
        guard chars.count >= 7 else { return value.isEmpty ? "" : "***" }
        return String(chars.prefix(3)) + String(repeating: "*", count: chars.count - 7) + String(chars.suffix(4))
    }
}
