import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LinliCore
import LinliTestSupport
import Testing

@testable import LinliCommunity
@testable import LinliHTTP
@testable import LinliWorkOrders

/// Where `/console` sends people: staff of one community straight to it, whoever sees several to
/// the list, a department (the police) to its organisation's desk with the work orders transferred
/// to it, every link of which it may follow.
@Suite("Landing per role")
struct LandingTests {
    static func get(_ client: any TestClientProtocol, _ uri: String, _ cookie: String, accept: String = "zh-CN")
        async throws -> (status: HTTPResponse.Status, location: String, text: String)
    {
        try await client.execute(uri: uri, method: .get, headers: [.cookie: cookie, .acceptLanguage: accept]) {
            ($0.status, $0.headers[.location] ?? "", $0.text)
        }
    }

    /// The same-site links of a page (`href="/…"`), entities decoded, without the style sheet.
    static func links(_ html: String) -> [String] {
        html.components(separatedBy: "href=\"").dropFirst().compactMap { part -> String? in
            guard let link = part.components(separatedBy: "\"").first, link.hasPrefix("/"), !link.hasPrefix("//")
            else { return nil }
            return link.replacingOccurrences(of: "&amp;", with: "&")
        }.filter { !$0.hasPrefix("/assets/") }
    }

    @Test func staffOfOneCommunityGoStraightToItAndWhoSeesSeveralChooses() async throws {
        try await withApp { client, fixture in
            for who in ["manager", "staff", "grid", "guard"] {
                let session = try await WebTests.signIn(client, who)
                let landing = try await Self.get(client, "/console", session.cookie)
                #expect(
                    [.found, .seeOther].contains(landing.status)
                        && landing.location == "/console/c/\(fixture.community.id)",
                    "\(who): \(landing.status) \(landing.location)")
                let community = try await Self.get(client, landing.location, session.cookie)
                #expect(community.status == .ok, "\(who)")
            }
            // The platform's administrator sees both communities, and chooses.
            let admin = try await WebTests.signIn(client, "admin")
            let list = try await Self.get(client, "/console", admin.cookie)
            #expect(list.status == .ok)
            #expect(
                list.text.contains("/console/c/\(fixture.community.id)\"")
                    && list.text.contains("/console/c/\(fixture.other.id)\""))
            #expect(list.text.contains(fixture.other.name))
            // A resident still goes to the portal.
            let resident = try await WebTests.signIn(client, "resident")
            #expect(try await Self.get(client, "/console", resident.cookie).location == "/app")
        }
    }

    @Test func thePoliceLandOnTheirDeskWithTheWorkTransferredToThemAndNoDeadEnd() async throws {
        try await withApp { client, fixture in
            let c = fixture.community.id
            let police = fixture.policeOrganisation
            // Two work orders: one transferred to the police station, one not.
            let staffAPI = APIUser(client, fixture, as: "staff")
            let theirs = try #require(
                try await staffAPI.call(
                    "/api/v1/communities/\(c)/work-orders", .post, ["category": "security", "title": "楼道可疑人员"],
                    expect: .created)["id"] as? String)
            let other = try await staffAPI.call(
                "/api/v1/communities/\(c)/work-orders", .post, ["category": "repair", "title": "水管漏水"],
                expect: .created)
            try await staffAPI.call(
                "/api/v1/work-orders/\(theirs)/steps", .post,
                ["step": "transfer", "organisationId": police, "note": "请派出所处理"])
            let otherNumber = try #require(other["number"] as? String)

            let session = try await WebTests.signIn(client, "police")
            let landing = try await Self.get(client, "/console", session.cookie)
            #expect([.found, .seeOther].contains(landing.status) && landing.location == "/console/o/\(police)")
            for accept in ["zh-CN", "en"] {
                let desk = try await Self.get(client, landing.location, session.cookie, accept: accept)
                #expect(desk.status == .ok, "\(accept)")
                let organisation = try await fixture.store.organisation(police, scope: .everything)
                #expect(desk.text.contains("<h1 id=\"desk-title\">\(organisation.name)</h1>"))
                #expect(desk.text.contains("/console/work-orders/\(theirs)\"") && desk.text.contains("楼道可疑人员"))
                #expect(!desk.text.contains("水管漏水") && !desk.text.contains(otherNumber), "only what is transferred")
                #expect(desk.text.contains(accept == "en" ? "1 open, 1 transferred in all" : "待办 1 件，累计转来 1 件"))
                #expect(!desk.text.contains(accept == "en" ? "转给本单位" : "Open work orders transferred"))
                // No menu entry to pages it may not open.
                #expect(!desk.text.contains("id=\"nav-people\"") && !desk.text.contains("id=\"nav-overview\""))
                let links = Self.links(desk.text)
                #expect(
                    links.contains("/console/work-orders/\(theirs)")
                        && links.contains("/console/c/\(c)/work-orders?status="))
                for link in Set(links) {
                    var answer = try await Self.get(client, link, session.cookie, accept: accept)
                    // The brand goes to /console, which goes to the desk: a few redirects at most.
                    var hops = 0
                    while [.found, .seeOther].contains(answer.status), hops < 3 {
                        answer = try await Self.get(client, answer.location, session.cookie, accept: accept)
                        hops += 1
                    }
                    #expect(answer.status == .ok, "\(link) answers \(answer.status) to the police")
                }
            }
            // The board the desk links to lists the transferred work order, and only it.
            let board = try await Self.get(client, "/console/c/\(c)/work-orders?status=", session.cookie)
            #expect(board.text.contains("楼道可疑人员") && !board.text.contains("水管漏水"))
            // Another organisation's desk is not theirs.
            let others = try await fixture.store.organisations(communityId: c, scope: .everything).filter {
                $0.id != police
            }
            let someone = try #require(others.first)
            #expect(try await Self.get(client, "/console/o/\(someone.id)", session.cookie).status == .notFound)
            // An agent of two organisations chooses between their desks.
            let account = try #require(try await fixture.store.account(username: "police"))
            try await fixture.store.bindRole(
                RoleBinding(accountId: account.id, role: .departmentAgent, communityId: c, organisationId: someone.id),
                actor: .system)
            let twice = try await WebTests.signIn(client, "police")
            let choice = try await Self.get(client, "/console", twice.cookie)
            #expect(choice.status == .ok && choice.text.contains("id=\"landing-organisations\""))
            let desks = Self.links(choice.text).filter { $0.hasPrefix("/console/o/") }
            #expect(Set(desks) == ["/console/o/\(police)", "/console/o/\(someone.id)"])
            for desk in desks { #expect(try await Self.get(client, desk, twice.cookie).status == .ok, "\(desk)") }
            // The community's manager may open the desk too.
            let manager = try await WebTests.signIn(client, "manager")
            #expect(try await Self.get(client, "/console/o/\(police)", manager.cookie).status == .ok)
        }
    }
}
