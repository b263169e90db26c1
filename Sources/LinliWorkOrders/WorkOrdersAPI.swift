import Foundation
import Hummingbird
import LinliCommunity
import LinliCore
import LinliHTTP
import LinliStorage

/// Work orders (工单) under /api/v1: report, dispatch, handle, transfer, resolve, rate, reopen;
/// every step on the timeline. Residents see and rate their own.
extension API {
    func registerWorkOrders(_ api: RouterGroup<AppContext>) {
        api.get("work-order-categories", use: workOrderCategories)
        api.get("communities/:cid/work-order-settings", use: workOrderSettings)
        api.put("communities/:cid/work-order-settings/:category", use: saveWorkOrderSetting)
        api.get("communities/:cid/work-orders", use: listWorkOrders)
        api.post("communities/:cid/work-orders", use: submitWorkOrder)
        api.get("me/work-orders", use: myWorkOrders)
        api.get("work-orders/:id", use: getWorkOrder)
        api.post("work-orders/:id/steps", use: workOrderStep)
        api.post("work-orders/:id/photos", use: addWorkOrderPhoto)
        api.get("work-orders/:id/photos/:photo", use: workOrderPhoto)
    }

    /// The reporter, or someone handling work orders where this one is, may add photos.
    func mayAddPhotos(_ order: WorkOrder, _ context: AppContext) async throws -> Bool {
        let caller = try context.requireCaller()
        if order.reporterAccountId == caller.accountId { return true }
        return try await store.workOrder(id: order.id, scope: caller.scope(for: .handleWorkOrders), accountId: "")
            != nil
    }

    /// A photo as the raw body (JPEG, PNG or WebP, at most 5 MiB, six per work order), checked by
    /// its bytes, not by what the upload claims.
    @Sendable func addWorkOrderPhoto(_ request: Request, context: AppContext) async throws -> Response {
        let order = try await visibleWorkOrder(context)
        guard try await mayAddPhotos(order, context) else { throw Problem.forbidden(.handleWorkOrders) }
        var request = request
        // Streamed to a temporary file, not read into memory; one byte over the limit tells
        // "too large" from "exactly the limit".
        let file = try await request.bodyFile(folder: uploads, upTo: Store.photoLimit + 1)
        do {
            let photo = try await store.addPhoto(to: order, file: file, folder: uploads, actor: context.principal)
            return try JSON.response(PhotoView(photo), status: .created)
        } catch let fault as PhotoFault {
            if case .tooLarge = fault {
                throw Problem(
                    .contentTooLarge, type: "too-large", title: "The photo is too large", detail: "body \(fault)",
                    errors: [FieldIssue("body", fault.description)])
            }
            if case .tooMany = fault { throw Problem.conflict("photos", fault.description) }
            throw Problem.invalid([FieldIssue("body", fault.description)])
        }
    }

    struct PhotoView: Encodable {
        var id: ID
        var contentType: String
        var size: Int
        var uploadedBy: String
        var createdAt: Millis
        var url: String
        init(_ p: WorkOrderPhoto) {
            id = p.id
            contentType = p.contentType
            size = p.size
            uploadedBy = p.uploadedBy
            createdAt = p.createdAt
            url = "/api/v1/work-orders/\(p.workOrderId)/photos/\(p.id)"
        }
    }

    @Sendable func workOrderPhoto(_ request: Request, context: AppContext) async throws -> Response {
        let order = try await visibleWorkOrder(context)
        let id = try context.parameters.require("photo")
        guard let photo = try await store.photos(of: order).first(where: { $0.id == id }),
            let data = FileManager.default.contents(
                atPath: URL(fileURLWithPath: uploads).appendingPathComponent(photo.file).path)
        else { throw Problem.notFound("photo") }
        return Response(
            status: .ok, headers: [.contentType: photo.contentType, .cacheControl: "private, max-age=3600"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct CategoryView: Encodable {
        var code: WorkOrderCategory
        var name: String
        var defaultDeadlineHours: Int
    }

    @Sendable func workOrderCategories(_ request: Request, context: AppContext) async throws -> Response {
        _ = try context.requireCaller()
        return try JSON.response([
            "items": WorkOrderCategory.allCases.map {
                CategoryView(code: $0, name: $0.name, defaultDeadlineHours: $0.defaultDeadlineHours)
            }
        ])
    }

    struct SettingView: Encodable {
        var category: WorkOrderCategory
        var organisationId: ID?
        var deadlineHours: Int
        var dispatch: DispatchMode
        var team: [ID]
        init(_ s: WorkOrderSetting) {
            category = s.category
            organisationId = s.organisationId
            deadlineHours = s.deadlineHours
            dispatch = s.dispatch
            team = s.teamIds
        }
    }

    @Sendable func workOrderSettings(_ request: Request, context: AppContext) async throws -> Response {
        let (community, _) = try await self.community(context, .viewWorkOrders)
        return try JSON.response([
            "items": try await store.workOrderSettings(communityId: community.id).map(SettingView.init)
        ])
    }

    struct SettingInput: Decodable {
        var organisationId: ID?
        var deadlineHours: Int
        var dispatch: DispatchMode?
        var team: [ID]?
    }

    @Sendable func saveWorkOrderSetting(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .handleWorkOrders)
        try requireCovers(scope, community.id, .handleWorkOrders)
        guard let category = WorkOrderCategory(rawValue: try context.parameters.require("category")) else {
            throw Problem.notFound("category")
        }
        let input = try await request.decodeJSON(SettingInput.self, context: context)
        var issues: [FieldIssue] = []
        if !(1...2_160).contains(input.deadlineHours) {
            issues.append(FieldIssue("deadlineHours", "must be from 1 to 2160 (90 days)"))
        }
        if let o = input.organisationId,
            try await store.organisations(communityId: community.id, scope: .everything).contains(where: { $0.id == o })
                == false
        {
            issues.append(FieldIssue("organisationId", "is not an organisation of this community"))
        }
        let team = input.team ?? []
        if input.dispatch == .roundRobin, team.isEmpty { issues.append(FieldIssue("team", "round robin needs a team")) }
        for (i, id) in team.enumerated() where try await handlerName(id, communityId: community.id) == nil {
            issues.append(FieldIssue("team[\(i)]", "is not an account that handles work orders in this community"))
        }
        if !issues.isEmpty { throw Problem.invalid(issues) }
        let setting = WorkOrderSetting(
            communityId: community.id, category: category, organisationId: input.organisationId,
            deadlineHours: input.deadlineHours,
            dispatch: input.dispatch ?? .assign, team: String(decoding: try JSONEncoder().encode(team), as: UTF8.self),
            nextInTurn: 0)
        try await store.saveWorkOrderSetting(setting, actor: context.principal)
        return try JSON.response(SettingView(setting))
    }

    /// The name of an account work orders of the community may be assigned to, or nil.
    func handlerName(_ accountId: ID, communityId: ID) async throws -> String? {
        guard let account = try await store.account(id: accountId), account.status == .active else { return nil }
        return Self.mayHandleWorkOrders(try await store.bindings(accountId: accountId), communityId: communityId)
            ? account.displayName : nil
    }

    /// A member of the community's staff as an assignee: by name, and by account when their account
    /// may handle work orders (else they are told by inbox or SMS, and dispatch records their steps).
    func rosterAssignee(_ staffId: ID, communityId: ID) async throws -> (
        assignee: (id: ID?, name: String), staff: StaffMember
    )? {
        guard let member = try await store.roster(communityId: communityId).first(where: { $0.staff.id == staffId })
        else { return nil }
        let handler = try await member.staff.accountId.asyncMap { try await handlerName($0, communityId: communityId) }
        return (
            (handler ?? nil) == nil ? (nil, member.staff.name) : (member.staff.accountId, member.staff.name),
            member.staff
        )
    }

    /// Whether role bindings let their account be given the community's work orders. A
    /// department's agents are not: a department gets an order by transfer, which is also what
    /// lets its agents see it.
    static func mayHandleWorkOrders(_ bindings: [RoleBinding], communityId: ID) -> Bool {
        bindings.contains {
            $0.role.capabilities.contains(.handleWorkOrders) && $0.role != .departmentAgent
                && ($0.role == .platformAdmin || $0.communityId == communityId)
        }
    }

    struct ReportInput: Decodable {
        var category: WorkOrderCategory
        var title: String
        var description: String?
        var householdId: ID?
        var buildingId: ID?
        var location: String?
        var phone: String?
    }

    @Sendable func submitWorkOrder(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let (community, scope) = try await self.community(context, .reportProblems)
        let caller = try context.requireCaller()
        let input = try await request.decodeJSON(ReportInput.self, context: context)
        var v = Validator()
        let title = v.text(input.title, "title", max: 100)
        let description = v.text(input.description ?? "", "description", max: 2_000, required: false)
        let location = v.text(input.location ?? "", "location", max: 200, required: false)
        try v.check()
        var householdId = input.householdId
        var buildingId = input.buildingId
        // A resident reports for their own home; a grid worker within the grid; staff anywhere in the community.
        if !scope.coversCommunity(community.id) {
            if let h = scope.households.first, scope.buildings.isEmpty { householdId = householdId ?? h }
            if let h = householdId, !scope.households.contains(h) {
                let home = try? await store.household(h, scope: .everything)
                if home.map({ scope.buildings.contains($0.buildingId) }) != true {
                    throw Problem.invalid([FieldIssue("householdId", "is not a home you may report for")])
                }
            }
            if let b = buildingId, !scope.buildings.contains(b), householdId == nil {
                throw Problem.invalid([FieldIssue("buildingId", "is outside your reach")])
            }
        }
        if let h = householdId {
            guard let home = try? await store.household(h, scope: .everything), home.communityId == community.id else {
                throw Problem.invalid([FieldIssue("householdId", "is not a household of this community")])
            }
            buildingId = home.buildingId
        } else if let b = buildingId {
            let issues = try await store.issuesOutside(
                community.id, .buildings, [b], field: "buildingId", listed: false)
            if !issues.isEmpty { throw Problem.invalid(issues) }
        }
        let source: WorkOrderSource =
            caller.isResidentOnly
            ? .resident : caller.roles.contains(.gridWorker) && !scope.coversCommunity(community.id) ? .grid : .staff
        let order = try await store.submitWorkOrder(
            WorkOrderReport(
                communityId: community.id, category: input.category, title: title!, description: description ?? "",
                source: source, reporterAccountId: caller.accountId,
                reporterName: caller.displayName, reporterPhone: input.phone ?? "", householdId: householdId,
                buildingId: buildingId, location: location ?? ""),
            actor: context.principal)
        return try JSON.response(WorkOrderView(order, steps: try await store.workOrderSteps(order)), status: .created)
    }

    struct WorkOrderView: Encodable {
        var order: WorkOrder
        var overdue: Bool
        var steps: [WorkOrderStepRecord]?
        var photos: [PhotoView]?
        init(
            _ order: WorkOrder, steps: [WorkOrderStepRecord]? = nil, photos: [WorkOrderPhoto]? = nil,
            now: Millis = nowMillis()
        ) {
            self.order = order
            overdue = order.status.isOpen && order.dueAt < now
            self.steps = steps
            self.photos = photos?.map(PhotoView.init)
        }
        func encode(to encoder: any Encoder) throws {
            try order.encode(to: encoder)
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(overdue, forKey: .overdue)
            try c.encodeIfPresent(steps, forKey: .steps)
            try c.encodeIfPresent(photos, forKey: .photos)
        }
        enum Keys: String, CodingKey { case overdue, steps, photos }
    }

    func workOrderFilter(_ q: inout QueryReader) -> WorkOrderFilter {
        var filter = WorkOrderFilter()
        if let status = q.string("status") {
            if status == "open" || WorkOrderStatus(rawValue: status) != nil {
                filter.status = status
            } else {
                q.issues.append(
                    FieldIssue(
                        "status",
                        "must be open or one of \(WorkOrderStatus.allCases.map(\.rawValue).joined(separator: ", "))"))
            }
        }
        filter.category = q.oneOf("category", WorkOrderCategory.self)
        filter.assigneeAccountId = q.string("assigneeId")
        filter.overdueOnly = q.bool("overdue")
        return filter
    }

    @Sendable func listWorkOrders(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        let cid = try context.parameters.require("cid")
        let scope = try context.scope(.viewWorkOrders)
        // A department sees only what was transferred to it, in any community it serves.
        guard
            scope.everything || scope.communities.contains(cid) || !scope.buildings.isEmpty
                || !scope.organisations.isEmpty || caller.communityIds.contains(cid)
        else {
            throw Problem.notFound("community")
        }
        var q = QueryReader(request)
        var filter = workOrderFilter(&q)
        if q.bool("mine") { filter.assigneeAccountId = caller.accountId }
        let page = q.page()
        try q.check()
        let found = try await store.workOrders(communityId: cid, filter: filter, page: page, scope: scope)
        return try JSON.response(
            Page(
                items: found.items.map { WorkOrderView($0) }, total: found.total, limit: found.limit,
                offset: found.offset))
    }

    @Sendable func myWorkOrders(_ request: Request, context: AppContext) async throws -> Response {
        let caller = try context.requireCaller()
        var q = QueryReader(request)
        let filter = workOrderFilter(&q)
        let page = q.page()
        try q.check()
        let found = try await store.workOrders(
            communityId: nil, filter: filter, page: page, scope: Scope(), reporter: caller.accountId)
        return try JSON.response(
            Page(
                items: found.items.map { WorkOrderView($0) }, total: found.total, limit: found.limit,
                offset: found.offset))
    }

    func visibleWorkOrder(_ context: AppContext) async throws -> WorkOrder {
        let caller = try context.requireCaller()
        let scope = caller.scope(for: .viewWorkOrders)
        guard
            let order = try await store.workOrder(
                id: try context.parameters.require("id"), scope: scope, accountId: caller.accountId)
        else {
            throw Problem.notFound("work order")
        }
        return order
    }

    @Sendable func getWorkOrder(_ request: Request, context: AppContext) async throws -> Response {
        let order = try await visibleWorkOrder(context)
        return try JSON.response(
            WorkOrderView(
                order, steps: try await store.workOrderSteps(order), photos: try await store.photos(of: order)))
    }

    struct StepInput: Decodable {
        var step: WorkOrderStep
        var note: String?
        var assigneeId: ID?
        var staffId: ID?
        var organisationId: ID?
        var rating: Int?
    }

    /// One step on a work order. The reporter's steps (resubmit, rate, reopen) are the reporter's
    /// alone; the others need `handleWorkOrders` where the work order is. A step that does not
    /// apply to the current status is a 409.
    @Sendable func workOrderStep(_ request: Request, context: AppContext) async throws -> Response {
        var request = request
        let caller = try context.requireCaller()
        let order = try await visibleWorkOrder(context)
        let input = try await request.decodeJSON(StepInput.self, context: context)
        if input.step.isReporters {
            guard order.reporterAccountId == caller.accountId else { throw Problem.forbidden(.reportProblems) }
        } else {
            let scope = caller.scope(for: .handleWorkOrders)
            guard try await store.workOrder(id: order.id, scope: scope, accountId: "") != nil else {
                throw Problem.forbidden(.handleWorkOrders)
            }
        }
        var details = Store.StepDetails()
        var issues: [FieldIssue] = []
        let note = (input.note ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        if note.count > 1_000 { issues.append(FieldIssue("note", "at most 1000 characters")) }
        if input.step.needsNote, note.isEmpty {
            issues.append(FieldIssue("note", "is required to \(input.step.rawValue)"))
        }
        details.note = note
        switch input.step {
        case .assign:
            if let staffId = input.staffId {
                if let found = try await rosterAssignee(staffId, communityId: order.communityId) {
                    (details.assignee, details.assigneeStaffId) = (found.assignee, staffId)
                } else {
                    issues.append(FieldIssue("staffId", "must be a member of this community's staff"))
                }
            } else if let id = input.assigneeId, let name = try await handlerName(id, communityId: order.communityId) {
                details.assignee = (id, name)
            } else {
                issues.append(FieldIssue("assigneeId", "must be an account that handles work orders in this community"))
            }
        case .grab:
            details.assignee = (caller.accountId, caller.displayName)
        case .transfer:
            if let o = input.organisationId,
                try await store.organisations(communityId: order.communityId, scope: .everything).contains(where: {
                    $0.id == o
                })
            {
                details.organisationId = o
            } else {
                issues.append(FieldIssue("organisationId", "must be an organisation of this community"))
            }
        case .rate:
            if let r = input.rating, (1...5).contains(r) {
                details.rating = r
            } else {
                issues.append(FieldIssue("rating", "must be 1 to 5"))
            }
        default: break
        }
        if !issues.isEmpty { throw Problem.invalid(issues) }
        let updated = try await store.takeStep(input.step, on: order.id, details: details, actor: context.principal)
        return try JSON.response(WorkOrderView(updated, steps: try await store.workOrderSteps(updated)))
    }
}
