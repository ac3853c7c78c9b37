import HTTPTypes

/// Routes requests by method and path to handlers, for an application's request hook:
///
/// ```swift
/// var router = HiveRouter()
/// router.get("/users/:id") { request, hive in .text("user \(request.parameters["id"]!)\n") }
/// router.get("/static/*") { request, hive in try files(request.parameters["*"]!) }
/// let routes = router  // built once, then shared: a value, Sendable
/// // in the hook: return try await routes.respond(to: request, hive: hive)
/// ```
///
/// Patterns are segments between "/": a literal ("users", matched against the request's segment once it is
/// percent-decoded, so "/caf%C3%A9" matches "/café"), a parameter (":id", any one segment, decoded, in
/// `request.parameters`), or, last only, "*": the rest of the path, zero or more segments, as sent (still
/// percent-encoded; check it for ".." before using it as a file path), in `request.parameters["*"]`. Empty segments
/// do not count: "/users//7/" is "/users/7".
///
/// A route whose handler is not async (added with `now:`, or a trailing closure without `await`, for which Swift picks
/// that overload) answers at once: ``respondNow(to:hive:)`` answers it, and 404, 405 and 414, from the application's
/// synchronous hook, and leaves the routes that await to ``respond(to:hive:)``, which answers both kinds:
///
/// ```swift
/// router.get("/health", now: { _, _ in .text("ok\n") })
/// // func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse? {
/// //     try routes.respondNow(to: request, hive: hive)
/// // }
/// // func request(_ request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
/// //     try await routes.respond(to: request, hive: hive)
/// // }
/// ```
///
/// The most specific route wins, segment by segment: a literal before a parameter before "*", falling back to the
/// next when the more specific one has no route for the rest of the path or for the method. `HEAD` is answered by a
/// `GET` route when there is no `HEAD` one (the server sends the head without the body). No route for the path: 404;
/// routes for the path but not for the method: 405 with `Allow`. A path longer than `maxPathLength` bytes or with
/// more than `maxSegments` segments is answered 414 unmatched, and one whose escapes decode to bytes that are not
/// UTF-8 is answered 400.
public struct HiveRouter: Sendable {
    public typealias Handler = @Sendable (HiveRequest, HiveServer) async throws -> HiveResponse
    /// A handler that answers at once, on the event loop (``HiveApplication/respondNow(to:hive:context:)``).
    public typealias ImmediateHandler = @Sendable (HiveRequest, HiveServer) throws -> HiveResponse

    /// The longest path (without the query) that is matched, in bytes.
    public var maxPathLength: Int
    /// The most segments a path may have to be matched.
    public var maxSegments: Int

    /// The route tree: `nodes[0]` is "/", children are indices into this array, so the router stays a value.
    private var nodes = [Node()]

    public init(maxPathLength: Int = 4096, maxSegments: Int = 64) {
        self.maxPathLength = maxPathLength
        self.maxSegments = maxSegments
    }

    public mutating func get(_ pattern: String, _ handler: @escaping Handler) { on(.get, pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping Handler) { on(.post, pattern, handler) }
    public mutating func put(_ pattern: String, _ handler: @escaping Handler) { on(.put, pattern, handler) }
    public mutating func patch(_ pattern: String, _ handler: @escaping Handler) { on(.patch, pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping Handler) { on(.delete, pattern, handler) }
    public mutating func head(_ pattern: String, _ handler: @escaping Handler) { on(.head, pattern, handler) }
    /// A route for every method that the path has no route of its own for.
    public mutating func any(_ pattern: String, _ handler: @escaping Handler) { on(nil, pattern, handler) }

    public mutating func get(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.get, pattern, now: handler) }
    public mutating func post(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.post, pattern, now: handler) }
    public mutating func put(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.put, pattern, now: handler) }
    public mutating func patch(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.patch, pattern, now: handler) }
    public mutating func delete(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.delete, pattern, now: handler) }
    public mutating func head(_ pattern: String, now handler: @escaping ImmediateHandler) { on(.head, pattern, now: handler) }
    /// An immediate route for every method that the path has no route of its own for.
    public mutating func any(_ pattern: String, now handler: @escaping ImmediateHandler) { on(nil, pattern, now: handler) }

    /// Adds a route whose handler answers at once (see ``respondNow(to:hive:)``); otherwise as ``on(_:_:_:)``.
    public mutating func on(_ method: HTTPRequest.Method?, _ pattern: String, now handler: @escaping ImmediateHandler) {
        add(method, pattern, .immediate(handler))
    }

    /// Adds a route for `method` (nil: any method). A malformed pattern, or a second route for the same method and
    /// pattern shape ("/users/:id" and "/users/:name"), is a programming error and stops the program, naming both:
    /// routes are built once at start-up, where the mistake is found at once.
    public mutating func on(_ method: HTTPRequest.Method?, _ pattern: String, _ handler: @escaping Handler) {
        add(method, pattern, .awaited(handler))
    }

    private mutating func add(_ method: HTTPRequest.Method?, _ pattern: String, _ action: Route.Action) {
        precondition(pattern.hasPrefix("/"), "HiveRouter: the route pattern \"\(pattern)\" must start with \"/\"")
        var node = 0
        var names = [String]()
        var wildcard = false
        let segments = pattern.split(separator: "/")
        for (index, segment) in segments.enumerated() {
            if segment == "*" {
                precondition(
                    index == segments.count - 1,
                    "HiveRouter: in the route pattern \"\(pattern)\", \"*\" must be the last segment")
                names.append("*")
                wildcard = true
            } else if segment.hasPrefix(":") {
                let name = String(segment.dropFirst())
                precondition(!name.isEmpty, "HiveRouter: the route pattern \"\(pattern)\" has a \":\" without a name")
                precondition(
                    !names.contains(name), "HiveRouter: the route pattern \"\(pattern)\" names \":\(name)\" twice")
                names.append(name)
                node = child(of: node, \.parameter)
            } else {
                guard let literal = PercentDecoding.decodeStrictly(segment) else {
                    preconditionFailure("HiveRouter: the route pattern \"\(pattern)\" has an escape that is not UTF-8")
                }
                if let next = nodes[node].literals[literal] {
                    node = next
                } else {
                    nodes.append(Node())
                    nodes[node].literals[literal] = nodes.count - 1
                    node = nodes.count - 1
                }
            }
        }
        let route = Route(pattern: pattern, parameterNames: names, action: action)
        if wildcard {
            nodes[node].wildcard.add(route, for: method)
        } else {
            nodes[node].endpoints.add(route, for: method)
        }
    }

    private mutating func child(of node: Int, _ edge: WritableKeyPath<Node, Int?>) -> Int {
        if let next = nodes[node][keyPath: edge] { return next }
        nodes.append(Node())
        nodes[node][keyPath: edge] = nodes.count - 1
        return nodes.count - 1
    }

    /// The response of the route for `request` (called with `request.parameters` filled), or the 404, 405, 414 or
    /// 400 described above. Throws what the handler throws.
    public func respond(to request: HiveRequest, hive: HiveServer) async throws -> HiveResponse {
        switch route(for: request) {
        case .handler(.awaited(let handler), let request): try await handler(request, hive)
        case .handler(.immediate(let handler), let request): try handler(request, hive)
        case .answer(let response): response
        }
    }

    /// As ``respond(to:hive:)`` when the route for `request` was added with `now:`, or when no route answers it
    /// (404, 405, 414, 400); nil when its route awaits: ``respond(to:hive:)`` answers that one (matching it again).
    public func respondNow(to request: HiveRequest, hive: HiveServer) throws -> HiveResponse? {
        switch route(for: request) {
        case .handler(.awaited, _): nil
        case .handler(.immediate(let handler), let request): try handler(request, hive)
        case .answer(let response): response
        }
    }

    /// What answers `request`: a route's handler (with the request's `parameters` filled), or an answer of its own.
    private enum Outcome {
        case handler(Route.Action, HiveRequest)
        case answer(HiveResponse)
    }

    private func route(for request: HiveRequest) -> Outcome {
        let uri = request.uri
        let path = uri[..<(uri.utf8.firstIndex(of: UInt8(ascii: "?")) ?? uri.endIndex)]
        switch match(request.method, path: path) {
        case .found(let route, let parameters):
            var request = request
            request.parameters = parameters
            return .handler(route.action, request)
        case .notFound:
            return .answer(.notFound)
        case .methodNotAllowed(let allowed):
            let list = allowed.map(\.rawValue).joined(separator: ", ")
            var response = HiveResponse.text(
                "405 Method Not Allowed: \(request.method) is not allowed on \(path.prefix(200)); use \(list)\n",
                status: .methodNotAllowed)
            response.headerFields[.allow] = list
            return .answer(response)
        case .rejected(let status, let message):
            return .answer(.text("\(status.code) \(status.reasonPhrase): \(message)\n", status: status))
        }
    }

    /// What `match` found.
    enum Match {
        case found(Route, HiveParameters)
        case notFound
        /// Routes exist for the path, none for the method: these methods have one (sorted; `HEAD` with `GET`).
        case methodNotAllowed([HTTPRequest.Method])
        /// The path was not matched at all (too long, too many segments, not UTF-8).
        case rejected(HTTPResponse.Status, String)
    }

    /// The route for `method` and `path` (the path of the request target, without the query, percent-encoded).
    func match(_ method: HTTPRequest.Method, path: Substring) -> Match {
        guard path.utf8.count <= maxPathLength else {
            return .rejected(
                .uriTooLong, "the path is \(path.utf8.count) bytes, more than the \(maxPathLength) this router matches")
        }
        var segments = [Segment]()
        for raw in path.split(separator: "/") {
            guard segments.count < maxSegments else {
                return .rejected(.uriTooLong, "the path has more than the \(maxSegments) segments this router matches")
            }
            guard let decoded = PercentDecoding.decodeStrictly(raw) else {
                return .rejected(
                    .badRequest, "the path segment \"\(raw.prefix(100))\" is not UTF-8 once percent-decoded")
            }
            segments.append(Segment(raw: raw, decoded: decoded))
        }
        var search = Search(method: method, segments: segments, path: path)
        search.walk(self.nodes, node: 0, at: 0)
        if let (route, values) = search.found {
            var parameters = HiveParameters()
            for (name, value) in zip(route.parameterNames, values) { parameters.append(name: name, value: value) }
            return .found(route, parameters)
        }
        if search.allowed.isEmpty { return .notFound }
        if search.allowed.contains(.get) { search.allowed.insert(.head) }
        return .methodNotAllowed(search.allowed.sorted { $0.rawValue < $1.rawValue })
    }

    struct Segment {
        var raw: Substring
        var decoded: String
    }

    /// One route: its handler and the names of what it captures, in order (":id" segments, then "*").
    struct Route: Sendable {
        /// A route's handler: awaited, or called at once (added with `now:`).
        enum Action: Sendable {
            case awaited(Handler)
            case immediate(ImmediateHandler)
        }

        var pattern: String
        var parameterNames: [String]
        var action: Action
    }

    /// The routes that end at one place of the tree, by method.
    struct Endpoints: Sendable {
        var byMethod: [(method: HTTPRequest.Method, route: Route)] = []
        var any: Route?

        var isEmpty: Bool { byMethod.isEmpty && any == nil }

        mutating func add(_ route: Route, for method: HTTPRequest.Method?) {
            let existing = method.map { method in byMethod.first { $0.method == method }?.route } ?? any
            if let existing {
                preconditionFailure(
                    "HiveRouter: the route \(method?.rawValue ?? "any") \(route.pattern) repeats the route "
                        + "\(method?.rawValue ?? "any") \(existing.pattern): a path has one route per method")
            }
            if let method { byMethod.append((method, route)) } else { any = route }
        }

        /// The route for `method`: its own, else `GET`'s for `HEAD`, else the one for any method.
        func route(for method: HTTPRequest.Method) -> Route? {
            if let own = byMethod.first(where: { $0.method == method }) { return own.route }
            if method == .head, let get = byMethod.first(where: { $0.method == .get }) { return get.route }
            return any
        }
    }

    struct Node: Sendable {
        var literals: [String: Int] = [:]
        var parameter: Int?
        /// Routes ending in "*" here: they match whatever follows, nothing included.
        var wildcard = Endpoints()
        /// Routes ending exactly here.
        var endpoints = Endpoints()
    }

    /// A depth-first walk of the tree in precedence order (literal, parameter, "*"), which stops at the first place
    /// with a route for the method. Each node is reached by one path only, so a walk visits each node at most once,
    /// and it goes no deeper than the request's segments.
    private struct Search {
        let method: HTTPRequest.Method
        let segments: [Segment]
        let path: Substring
        var captured = [String]()
        var found: (Route, [String])?
        /// Methods of the places the path reached without a route for `method` (for 405).
        var allowed = Set<HTTPRequest.Method>()

        init(method: HTTPRequest.Method, segments: [Segment], path: Substring) {
            self.method = method
            self.segments = segments
            self.path = path
        }

        /// True once a route is found.
        @discardableResult
        mutating func walk(_ nodes: [Node], node index: Int, at position: Int) -> Bool {
            let node = nodes[index]
            if position == segments.count {
                if visit(node.endpoints) { return true }
            } else {
                let segment = segments[position]
                if let next = node.literals[segment.decoded], walk(nodes, node: next, at: position + 1) { return true }
                if let next = node.parameter {
                    captured.append(segment.decoded)
                    if walk(nodes, node: next, at: position + 1) { return true }
                    captured.removeLast()
                }
            }
            guard !node.wildcard.isEmpty else { return false }
            let rest = position == segments.count ? "" : String(path[segments[position].raw.startIndex...])
            captured.append(rest)
            if visit(node.wildcard) { return true }
            captured.removeLast()
            return false
        }

        private mutating func visit(_ endpoints: Endpoints) -> Bool {
            if let route = endpoints.route(for: method) {
                found = (route, captured)
                return true
            }
            for (method, _) in endpoints.byMethod { allowed.insert(method) }
            return false
        }
    }
}
