import Foundation
import LinliCore
import Testing

@testable import LinliMessaging
@testable import LinliServer

@Suite("Configuration: outbound channels and the address devices are told")
struct ConfigurationTests {
    @Test func channelsComeWholeFromTheConfiguration() throws {
        func resolve(_ flags: [String: String]) throws -> ServerConfiguration {
            try ServerConfiguration.resolve(flags: flags, environment: [:], configFile: nil)
        }
        #expect(try resolve([:]).outbound.channels.isEmpty)
        let both = try resolve([
            "smtp": "smtp://user:p%40ss@mail.example.org:587", "mail-from": "linli@example.org",
            "sms-webhook": "https://sms.example.org/send", "sms-secret": "0123456789abcdef",
        ])
        #expect(both.outbound.channels == [.sms, .email])
        #expect(both.outbound.webhookAddresses == WebhookAddresses(), "nothing private is allowed unless named")
        let allowed = try resolve(["webhook-allow": "192.168.10.0/24, hooks.lan"]).outbound.webhookAddresses
        #expect(allowed.allowedRanges == [IPAddressRange("192.168.10.0/24")!] && allowed.allowedHosts == ["hooks.lan"])
        #expect(
            both.outbound.smtp
                == SMTPSettings(
                    host: "mail.example.org", port: 587, username: "user", password: "p@ss", from: "linli@example.org"))
        for (flags, key) in [
            (["smtp": "smtp://mail.example.org"], "--smtp"), (["mail-from": "a@example.org"], "--mail-from"),
            (["smtp": "http://mail.example.org", "mail-from": "a@example.org"], "--smtp"),
            (["smtp": "smtp://mail.example.org", "mail-from": "not an address"], "--mail-from"),
            (["sms-webhook": "https://sms.example.org"], "--sms-webhook"),
            (["sms-webhook": "ftp://sms.example.org", "sms-secret": "0123456789abcdef"], "--sms-webhook"),
            (["sms-webhook": "https://sms.example.org", "sms-secret": "short"], "--sms-secret"),
            (["webhook-allow": "10.0.0.0/40"], "--webhook-allow"), (["webhook-allow": "http://x/"], "--webhook-allow"),
        ] {
            #expect(throws: ServerConfiguration.Invalid.self, "\(flags)") { try resolve(flags) }
            do { _ = try resolve(flags) } catch let invalid as ServerConfiguration.Invalid {
                #expect(invalid.key == key, "\(flags)")
            }
        }
    }

    @Test func devicesAreToldAnAddressTheyCanReach() throws {
        func resolve(_ flags: [String: String]) throws -> ServerConfiguration {
            try ServerConfiguration.resolve(flags: flags, environment: [:], configFile: nil)
        }
        #expect(try resolve([:]).downloadBase == "http://127.0.0.1:8080")
        #expect(try resolve(["http": "192.168.1.10:9000"]).downloadBase == "http://192.168.1.10:9000")
        #expect(
            try resolve(["http": "0.0.0.0:8080"]).downloadBase == nil,
            "every interface names no address a device could use")
        #expect(
            try resolve(["http": "0.0.0.0:8080", "device-url": "https://linli.example.org/"]).downloadBase
                == "https://linli.example.org")
        for bad in ["linli.example.org", "ftp://linli.example.org", "http://", "http://x.org/?a=1"] {
            do {
                _ = try resolve(["device-url": bad])
                Issue.record("\(bad) was taken")
            } catch let invalid as ServerConfiguration.Invalid {
                #expect(invalid.key == "--device-url", "\(bad)")
            }
        }
    }
}
