import Foundation
import LinliCore
import Testing

@testable import LinliMessaging

@Suite("Where webhooks may go")
struct WebhookAddressesTests {
    let none = WebhookAddresses()

    func refused(_ address: String, allow: String = "") throws -> Bool {
        let policy = try WebhookAddresses(allow: allow)
        return policy.refusal(host: address, address: try #require(IPAddress(address))) != nil
    }

    @Test func theServersOwnNetworksAreRefusedInEveryForm() throws {
        for address in [
            "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
            "169.254.169.254", "100.64.0.1", "224.0.0.251", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1",
            "fc00::1", "ff02::1",
            // IPv6 spellings of IPv4 addresses: mapped, IPv4-compatible, NAT64, 6to4.
            "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::",
        ] {
            #expect(try refused(address), "\(address) is let through")
        }
        for address in [
            "93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:2800:220:1:248:1893:25c8:1946", "2001:4860::8888",
        ] {
            #expect(try !refused(address), "\(address) is refused")
        }
        let why = none.refusal(host: "x", address: IPAddress("169.254.169.254")!)
        #expect(why == "169.254.169.254 is a link-local address")
    }

    @Test func anAdministratorMayAllowHostsAndRanges() throws {
        #expect(try !refused("192.168.10.20", allow: "192.168.10.0/24"))
        #expect(try refused("192.168.11.20", allow: "192.168.10.0/24"))
        #expect(try !refused("127.0.0.1", allow: "127.0.0.1, fd00::/8"))
        #expect(try !refused("fd12::1", allow: "127.0.0.1, fd00::/8"))
        let byName = try WebhookAddresses(allow: "hooks.lan")
        #expect(byName.refusal(host: "HOOKS.lan", address: IPAddress("10.0.0.5")!) == nil)
        #expect(byName.refusal(host: "other.lan", address: IPAddress("10.0.0.5")!) != nil)
        #expect(throws: ValidationFailure.self) { try WebhookAddresses(allow: "10.0.0.0/33") }
        #expect(throws: ValidationFailure.self) { try WebhookAddresses(allow: "http://x/") }
    }

    /// Names are resolved and every address they resolve to is checked; numeric spellings that
    /// the resolver reads as 127.0.0.1 are caught the same way.
    @Test func namesAreCheckedByWhatTheyResolveTo() async throws {
        for url in ["http://localhost:8080/api/v1/me", "http://0x7f000001/", "http://2130706433/", "http://[::1]:22/"] {
            let why = await none.refusal(url: URL(string: url)!)
            #expect(why?.contains("loopback") == true, "\(url): \(why ?? "let through")")
        }
        #expect(await none.refusal(url: URL(string: "http://169.254.169.254/latest/meta-data/")!) != nil)
        // A name that does not resolve now is checked when it is sent to.
        #expect(await none.refusal(url: URL(string: "https://no-such-host.invalid/hook")!) == nil)
    }

    @Test func addressesAndRangesParseStrictly() throws {
        #expect(IPAddress("127.1") == nil && IPAddress("0x7f.0.0.1") == nil && IPAddress("1.2.3.4.5") == nil)
        #expect(IPAddress("[::1]")?.description == "::1")
        #expect(IPAddress("fe80::1%eth0")?.description == "fe80::1")
        #expect(IPAddressRange("10.0.0.0/8")!.contains(IPAddress("10.255.0.1")!))
        #expect(!IPAddressRange("10.0.0.0/8")!.contains(IPAddress("11.0.0.1")!))
        #expect(!IPAddressRange("10.0.0.0/8")!.contains(IPAddress("::a00:1")!), "an IPv4 range holds no IPv6 address")
        #expect(IPAddressRange("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        #expect(!IPAddressRange("0.0.0.0/0")!.contains(IPAddress("2001::1")!))
        #expect(IPAddressRange("::/0")!.contains(IPAddress("8.8.8.8")!))
    }

    /// A target that refuses the connection is a failed delivery, not a stopped server: the answer
    /// the connection never gave is not left pending (a debug build stopped at it).
    @Test func aRefusedConnectionIsAnOutcome() async throws {
        let closed = try #require(URL(string: "http://127.0.0.1:1/hook"))
        for _ in 0..<3 {
            let outcome = await OutboundHTTP.post(
                closed, body: Data("{}".utf8), headers: [], addresses: nil, timeout: .seconds(2))
            #expect(outcome.status == nil && outcome.error != nil && !outcome.refused)
        }
    }
}
