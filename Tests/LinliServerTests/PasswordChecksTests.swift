import LinliCore
import Testing

@testable import LinliHTTP

@Suite("Password checks of sign-ins")
struct PasswordChecksTests {
    /// A password verified once is recognised without bcrypt until the stored hash changes.
    @Test func aVerifiedPasswordIsRememberedUntilTheHashChanges() async throws {
        let checks = PasswordChecks(concurrent: 1)
        let hash = Passwords.hashBlocking("first password 1")
        #expect(try await checks.verify("first password 1", hash: hash, account: "mqtt nvr"))
        #expect(checks.remembered == 0 && checks.hashed == 1)
        for _ in 0..<1_000 { #expect(try await checks.verify("first password 1", hash: hash, account: "mqtt nvr")) }
        #expect(checks.hashed == 1 && checks.remembered == 1_000, "1,000 reconnects, one bcrypt")
        #expect(try await !checks.verify("a wrong password", hash: hash, account: "mqtt nvr"))
        #expect(checks.hashed == 2, "a wrong password is hashed every time")
        // The password was changed (on this node or another): the old one no longer passes.
        let changed = Passwords.hashBlocking("second password 2")
        #expect(try await !checks.verify("first password 1", hash: changed, account: "mqtt nvr"))
        #expect(try await checks.verify("second password 2", hash: changed, account: "mqtt nvr"))
        // Nothing is remembered for a check without an account (the decoy of unknown names).
        #expect(try await checks.verify("second password 2", hash: changed, account: nil))
        #expect(checks.hashed == 5)
    }

    /// Sign-ins of one account with one password arriving together wait for one check: 64 at once
    /// with one place and two waiting are all answered, with one bcrypt; a wrong password too.
    @Test func signInsWithTheSamePasswordShareOneCheck() async throws {
        let checks = PasswordChecks(concurrent: 1, waiting: 2)
        let hash = Passwords.hashBlocking("camera password 1")
        func together(_ password: String) async -> [String] {
            await withTaskGroup(of: String.self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        do {
                            return try await checks.verify(password, hash: hash, account: "mqtt nvr") ? "ok" : "wrong"
                        } catch { return "\(error)" }
                    }
                }
                return await group.reduce(into: [String]()) { $0.append($1) }
            }
        }
        #expect(await together("a wrong password") == Array(repeating: "wrong", count: 64))
        let wrongChecks = checks.hashed
        #expect(wrongChecks < 64, "sign-ins that arrived while the check was under way did not hash again")
        #expect(await together("camera password 1") == Array(repeating: "ok", count: 64))
        #expect(checks.busy == 0)
        #expect(checks.hashed - wrongChecks <= 2, "one check (two if the first ended before the rest arrived)")
    }

    /// At most `concurrent` bcrypt checks run and `waiting` wait; the rest are refused at once.
    @Test func checksBeyondThePlacesAndTheQueueAreRefused() async throws {
        let checks = PasswordChecks(concurrent: 1, waiting: 2)
        let hash = Passwords.hashBlocking("some password 1")
        let outcomes = await withTaskGroup(of: String.self) { group in
            for i in 0..<8 {
                group.addTask {
                    do {
                        return try await checks.verify("guess \(i)", hash: hash, account: nil) ? "ok" : "wrong"
                    } catch is PasswordChecks.Busy {
                        return "busy"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            return await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.contains("busy"), "eight at once with one place and two waiting: some are refused")
        #expect(outcomes.allSatisfy { $0 == "wrong" || $0 == "busy" })
        // Once they are done, there is room again.
        #expect(try await !checks.verify("guess again", hash: hash, account: nil))
    }
}

@Suite("The client behind a reverse proxy")
struct ForwardedForTests {
    let proxies = [IPAddressRange("127.0.0.1")!, IPAddressRange("10.0.0.0/8")!]

    @Test func onlyTrustedProxiesAreBelieved() {
        // From a trusted proxy: the last entry it added, past other trusted proxies.
        #expect(
            ForwardedForMiddleware.client(peer: "127.0.0.1", forwardedFor: "203.0.113.9", proxies: proxies)
                == "203.0.113.9")
        #expect(
            ForwardedForMiddleware.client(
                peer: "127.0.0.1", forwardedFor: "1.1.1.1, 203.0.113.9, 10.1.2.3", proxies: proxies)
                == "203.0.113.9", "what the client wrote before its own address is not believed")
        // From anyone else, the header is the client's own writing.
        #expect(
            ForwardedForMiddleware.client(peer: "198.51.100.7", forwardedFor: "127.0.0.1", proxies: proxies)
                == "198.51.100.7")
        #expect(ForwardedForMiddleware.client(peer: "127.0.0.1", forwardedFor: "1.1.1.1", proxies: []) == "127.0.0.1")
        // A list that cannot be read: the last address that could.
        #expect(ForwardedForMiddleware.client(peer: "127.0.0.1", forwardedFor: "junk", proxies: proxies) == "127.0.0.1")
        #expect(ForwardedForMiddleware.client(peer: "127.0.0.1", forwardedFor: nil, proxies: proxies) == "127.0.0.1")
    }
}

@Suite("Request bodies")
struct BodyBudgetTests {
    @Test func theBudgetIsSharedAndGivenBack() {
        let budget = BodyBudget(limit: 100)
        #expect(budget.take(60) && budget.take(40))
        #expect(!budget.take(1), "nothing is left")
        budget.give(40)
        #expect(budget.inUse == 60 && budget.take(30) && !budget.take(11))
    }
}
