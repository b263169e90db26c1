import Foundation

/// The languages Linli's pages speak: Chinese first, for the community's people; English as a choice.
public enum Language: String, Sendable, CaseIterable, Codable {
    case zh = "zh-CN"
    case en

    /// What a page speaks when nothing says otherwise.
    public static let standard = Language.zh

    /// A language from a tag as browsers and people write it (`zh`, `zh-CN`, `zh-Hans-CN`, `en-GB`,
    /// any case); nil for one Linli does not speak.
    public init?(tag: String) {
        let primary = tag.trimmingCharacters(in: .whitespaces).lowercased().split(separator: "-").first ?? ""
        switch primary {
        case "zh": self = .zh
        case "en": self = .en
        default: return nil
        }
    }

    /// The first language of an `Accept-Language` header Linli speaks, by the header's weights;
    /// `standard` when there is none (or the header is missing or malformed).
    public static func negotiate(_ acceptLanguage: String?) -> Language {
        guard let acceptLanguage else { return standard }
        var best: (language: Language, weight: Double)?
        for (index, item) in acceptLanguage.split(separator: ",").prefix(32).enumerated() {
            let parts = item.split(separator: ";")
            guard let tag = parts.first, let language = Language(tag: String(tag)) else { continue }
            var weight = 1.0
            for parameter in parts.dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1)
                if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces) == "q" {
                    weight = Double(pair[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            // Ties go to the earlier item: the header's own order.
            let ranked = weight - Double(index) * 1e-6
            if weight > 0, ranked > (best?.weight ?? 0) { best = (language, ranked) }
        }
        return best?.language ?? standard
    }

    /// The other language: what the header's switch offers.
    public var other: Language { self == .zh ? .en : .zh }
}
