import Foundation
import LinliCommunity
import LinliStorage
import NIOCore
import NIOPosix

/// Where e-mail goes: an SMTP relay (the community's mail server, or a local one), plain SMTP with
/// optional AUTH PLAIN. Configured as `smtp://user:password@host:port` and `mail-from`.
public struct SMTPSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var from: String

    public init(host: String, port: Int, username: String? = nil, password: String? = nil, from: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.from = from
    }

    /// Reads `smtp://[user[:password]@]host[:port]`; nil when it is not one.
    public static func parse(_ url: String, from: String) -> SMTPSettings? {
        guard let c = URLComponents(string: url), c.scheme?.lowercased() == "smtp", let host = c.host, !host.isEmpty
        else { return nil }
        let port = c.port ?? 25
        guard (1...65535).contains(port) else { return nil }
        return SMTPSettings(
            host: host, port: port, username: c.user?.removingPercentEncoding,
            password: c.password?.removingPercentEncoding, from: from)
    }
}

public struct SMTPError: Error, CustomStringConvertible {
    public var description: String
}

/// A small SMTP client: one message per connection, each reply checked, the whole exchange bounded
/// by a timeout. The message is text/plain in UTF-8, base64-encoded, so no line of it can end the
/// DATA early and no header can be forged from a title or body.
package enum SMTP {
    package static func send(
        _ settings: SMTPSettings, to: String, subject: String, body: String, messageId: String,
        timeout: Duration = .seconds(30)
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await exchange(
                    settings, to: to,
                    message: compose(from: settings.from, to: to, subject: subject, body: body, messageId: messageId))
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw SMTPError(description: "no answer from \(settings.host):\(settings.port) within \(timeout)")
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// The message as it goes after DATA, ending in CRLF (the terminating "." is added by the exchange).
    package static func compose(
        from: String, to: String, subject: String, body: String, messageId: String, date: Date = Date()
    )
        -> String
    {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let domain = from.split(separator: "@").last.map(String.init) ?? "linli"
        let encodedBody = Data(body.utf8).base64EncodedString(options: [
            .lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
        ])
        return [
            "From: Linli <\(from)>",
            "To: <\(to)>",
            "Subject: =?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?=",
            "Date: \(formatter.string(from: date))",
            "Message-ID: <\(messageId)@\(domain)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8",
            "Content-Transfer-Encoding: base64",
            "",
            encodedBody,
        ].joined(separator: "\r\n") + "\r\n"
    }

    private static func exchange(_ s: SMTPSettings, to: String, message: String) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .connect(host: s.host, port: s.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var replies = ReplyReader(inbound.makeAsyncIterator())
            func say(_ line: String, expect codes: Set<Int>) async throws {
                try await outbound.write(ByteBuffer(string: line + "\r\n"))
                try await replies.expect(codes, after: line.hasPrefix("AUTH") ? "AUTH" : line)
            }
            try await replies.expect([220], after: "connecting")
            try await say("EHLO linli", expect: [250])
            if let user = s.username {
                let token = Data("\0\(user)\0\(s.password ?? "")".utf8).base64EncodedString()
                try await say("AUTH PLAIN \(token)", expect: [235])
            }
            try await say("MAIL FROM:<\(s.from)>", expect: [250])
            try await say("RCPT TO:<\(to)>", expect: [250, 251])
            try await say("DATA", expect: [354])
            try await outbound.write(ByteBuffer(string: message + ".\r\n"))
            try await replies.expect([250], after: "the message")
            try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
        }
    }

    /// Reads SMTP replies ("250-…" continues, "250 …" ends) from the connection's bytes.
    package struct ReplyReader {
        package var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
        package var pending: [UInt8] = []

        package init(_ iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) { self.iterator = iterator }

        package mutating func line() async throws -> String {
            while true {
                if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[..<end], as: UTF8.self).trimmingCharacters(in: .newlines)
                    pending.removeSubrange(...end)
                    return line
                }
                guard pending.count < 64 * 1024, var buffer = try await iterator.next() else {
                    throw SMTPError(description: "the server closed the connection")
                }
                pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            }
        }

        package mutating func expect(_ codes: Set<Int>, after what: String) async throws {
            while true {
                let text = try await line()
                guard text.count >= 3, let code = Int(text.prefix(3)) else {
                    throw SMTPError(description: "not an SMTP reply after \(what): \(text.prefix(100))")
                }
                if text.count > 3, text[text.index(text.startIndex, offsetBy: 3)] == "-" { continue }
                guard codes.contains(code) else { throw SMTPError(description: "\(what): \(text.prefix(200))") }
                return
            }
        }
    }
}
