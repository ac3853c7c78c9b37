import HTTPTypes
import HiveIPC
import Logging
import NIOEmbedded
import XCTest

@testable import HiveWorker

final class HiveRouterTests: XCTestCase {
    private static let ok: HiveRouter.Handler = { _, _ in .text("ok\n") }

    /// A router with one route per pattern and method, each answering with its pattern.
    private func router(_ routes: [(HTTPRequest.Method?, String)], limits: (Int, Int) = (4096, 64)) -> HiveRouter {
        var router = HiveRouter(maxPathLength: limits.0, maxSegments: limits.1)
        for (method, pattern) in routes {
            router.on(method, pattern) { request, _ in .text("\(pattern) \(request.parameters)") }
        }
        return router
    }

    /// What matching says, in one line: "pattern [name: value, ...]", "404", "405 GET, HEAD" or "414 ...".
    private func outcome(_ router: HiveRouter, _ method: HTTPRequest.Method, _ path: String) -> String {
        switch router.match(method, path: path[...]) {
        case .found(let route, let parameters): "\(route.pattern) \(parameters)"
        case .notFound: "404"
        case .methodNotAllowed(let allowed): "405 " + allowed.map(\.rawValue).joined(separator: ", ")
        case .rejected(let status, let message): "\(status.code) \(message)"
        }
    }

    func testLiteralRoutes_matchByMethodAndWholePath() {
        let router = router([(.get, "/"), (.get, "/users"), (.post, "/users"), (.get, "/users/new")])
        XCTAssertEqual(outcome(router, .get, "/"), "/ []")
        XCTAssertEqual(outcome(router, .get, "/users"), "/users []")
        XCTAssertEqual(outcome(router, .post, "/users"), "/users []")
        XCTAssertEqual(outcome(router, .get, "/users/new"), "/users/new []")
        XCTAssertEqual(outcome(router, .get, "/users/new/x"), "404")
        XCTAssertEqual(outcome(router, .get, "/user"), "404")
        XCTAssertEqual(outcome(router, .get, "/Users"), "404", "literals compare exactly")
    }

    func testEmptySegments_doNotCount() {
        let router = router([(.get, "/users/:id"), (.get, "/")])
        XCTAssertEqual(outcome(router, .get, "//users///7/"), "/users/:id [id: 7]")
        XCTAssertEqual(outcome(router, .get, "///"), "/ []")
        XCTAssertEqual(outcome(router, .get, ""), "/ []")
    }

    func testParameters_captureOneDecodedSegmentEach() {
        let router = router([(.get, "/users/:id/posts/:post")])
        XCTAssertEqual(outcome(router, .get, "/users/7/posts/42"), "/users/:id/posts/:post [id: 7, post: 42]")
        XCTAssertEqual(outcome(router, .get, "/users/caf%C3%A9/posts/a+b"),
                       "/users/:id/posts/:post [id: café, post: a+b]", "in a path + is itself")
        XCTAssertEqual(outcome(router, .get, "/users/a%2Fb/posts/1"), "/users/:id/posts/:post [id: a/b, post: 1]",
                       "an escaped slash stays inside its segment")
        XCTAssertEqual(outcome(router, .get, "/users/7/posts"), "404")
    }

    func testPercentEncodedLiterals_matchDecoded_inPatternsAndPaths() {
        let router = router([(.get, "/café"), (.get, "/a%20b")])
        XCTAssertEqual(outcome(router, .get, "/caf%C3%A9"), "/café []")
        XCTAssertEqual(outcome(router, .get, "/caf%c3%a9"), "/café []", "hex digits in either case")
        XCTAssertEqual(outcome(router, .get, "/a%20b"), "/a%20b []")
        XCTAssertEqual(outcome(router, .get, "/a b"), "/a%20b []")
    }

    func testLiteralWinsOverParameter_parameterOverWildcard_andTheNextIsTriedWhenOneDeadEnds() {
        let router = router([
            (.get, "/users/me"), (.get, "/users/:id"), (.get, "/users/*"),
            (.get, "/users/me/settings"), (.get, "/users/:id/posts"),
        ])
        XCTAssertEqual(outcome(router, .get, "/users/me"), "/users/me []")
        XCTAssertEqual(outcome(router, .get, "/users/7"), "/users/:id [id: 7]")
        XCTAssertEqual(outcome(router, .get, "/users/me/settings"), "/users/me/settings []")
        XCTAssertEqual(outcome(router, .get, "/users/me/posts"), "/users/:id/posts [id: me]")
        XCTAssertEqual(outcome(router, .get, "/users/7/likes"), "/users/* [*: 7/likes]")
        // Registration order does not matter.
        let reversed = self.router([(.get, "/users/*"), (.get, "/users/:id"), (.get, "/users/me")])
        XCTAssertEqual(outcome(reversed, .get, "/users/me"), "/users/me []")
        XCTAssertEqual(outcome(reversed, .get, "/users/7"), "/users/:id [id: 7]")
    }

    func testWildcard_takesTheRestAsSent_zeroOrMoreSegments() {
        let router = router([(.get, "/static/*"), (.get, "/files/:kind/*")])
        XCTAssertEqual(outcome(router, .get, "/static/css/site%20v2.css"), "/static/* [*: css/site%20v2.css]")
        XCTAssertEqual(outcome(router, .get, "/static"), "/static/* [*: ]")
        XCTAssertEqual(outcome(router, .get, "/static/"), "/static/* [*: ]")
        XCTAssertEqual(outcome(router, .get, "/static/a//b"), "/static/* [*: a//b]")
        XCTAssertEqual(outcome(router, .get, "/files/img/a/b"), "/files/:kind/* [kind: img, *: a/b]")
        XCTAssertEqual(outcome(router, .get, "/other"), "404")
        XCTAssertEqual(outcome(self.router([(.get, "/*")]), .get, "/"), "/* [*: ]")
    }

    func testHead_isAnsweredByGet_unlessItHasItsOwnRoute() {
        let router = router([(.get, "/a"), (.get, "/b"), (.head, "/b"), (.post, "/c")])
        XCTAssertEqual(outcome(router, .head, "/a"), "/a []")
        XCTAssertEqual(router.match(.head, path: "/b").route?.pattern, "/b")
        XCTAssertEqual(outcome(router, .head, "/c"), "405 POST")
    }

    func testWrongMethod_is405WithEveryAllowedMethod_andUnknownPathIs404() {
        let router = router([(.get, "/items/:id"), (.put, "/items/:id"), (.delete, "/items/*"), (.post, "/items")])
        XCTAssertEqual(outcome(router, .patch, "/items/3"), "405 DELETE, GET, HEAD, PUT")
        XCTAssertEqual(outcome(router, .get, "/items"), "405 DELETE, POST", "/items/* matches /items too")
        XCTAssertEqual(outcome(router, .get, "/nothing"), "404")
        XCTAssertEqual(outcome(HiveRouter(), .get, "/"), "404")
    }

    func testAny_answersEveryMethodWithoutARouteOfItsOwn() {
        let router = router([(.get, "/x"), (nil, "/x")])
        XCTAssertEqual(router.match(.get, path: "/x").route.map { "\($0.pattern)" }, "/x")
        XCTAssertEqual(outcome(router, HTTPRequest.Method("PURGE")!, "/x"), "/x []")
        XCTAssertEqual(outcome(router, .delete, "/y"), "404")
    }

    func testLongOrOddPaths_areRefusedOrUnmatched_neverACrash() {
        let router = router([(.get, "/:a"), (.get, "/*")], limits: (64, 4))
        XCTAssertEqual(outcome(router, .get, "/" + String(repeating: "a", count: 64)),
                       "414 the path is 65 bytes, more than the 64 this router matches")
        XCTAssertEqual(outcome(router, .get, "/a/b/c/d/e"), "414 the path has more than the 4 segments this router matches")
        XCTAssertEqual(outcome(router, .get, "/a/b/c/d"), "/* [*: a/b/c/d]")
        XCTAssertEqual(outcome(router, .get, "/%FF%FE"), "400 the path segment \"%FF%FE\" is not UTF-8 once percent-decoded")
        XCTAssertEqual(outcome(router, .get, "/%zz"), "/:a [a: %zz]", "a bad escape stays as it is")
        XCTAssertEqual(outcome(router, .get, "/100%"), "/:a [a: 100%]")
        XCTAssertEqual(outcome(router, .get, "/%4"), "/:a [a: %4]")
        XCTAssertEqual(outcome(router, .get, "/%00"), "/:a [a: \u{0}]")
        XCTAssertEqual(outcome(router, .get, "/?x"), "/:a [a: ?x]", "match takes the path; respond cuts the query")
    }

    func testRespond_callsTheHandlerWithParameters_andAnswers404And405() async throws {
        var router = HiveRouter()
        router.get("/users/:id") { request, hive in
            .text("user \(request.parameters["id"] ?? "?") on worker \(hive.workerID), tab \(request.query["tab"] ?? "-")")
        }
        router.post("/users", Self.ok)
        let hive = HiveServer(
            workerID: 3, eventLoop: EmbeddedEventLoop(), registry: .heap(capacity: 1, workerCount: 4),
            limits: ConnectionLimits(), application: EmptyApplication(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        func request(_ method: HTTPRequest.Method, _ target: String) -> HiveRequest {
            HiveRequest(
                head: HTTPRequest(method: method, scheme: "http", authority: "h", path: target),
                connection: ConnectionID(rawValue: 1))
        }
        let found = try await router.respond(to: request(.get, "/users/ada%20l?tab=posts"), hive: hive)
        XCTAssertEqual(found.status, .ok)
        XCTAssertEqual(String(decoding: found.body, as: UTF8.self), "user ada l on worker 3, tab posts")
        let missing = try await router.respond(to: request(.get, "/nope"), hive: hive)
        XCTAssertEqual(missing.status, .notFound)
        let wrong = try await router.respond(to: request(.delete, "/users?x=1"), hive: hive)
        XCTAssertEqual(wrong.status, .methodNotAllowed)
        XCTAssertEqual(wrong.headerFields[.allow], "POST")
        XCTAssertEqual(
            String(decoding: wrong.body, as: UTF8.self),
            "405 Method Not Allowed: DELETE is not allowed on /users; use POST\n")
        let long = try await router.respond(to: request(.get, "/" + String(repeating: "x", count: 5000)), hive: hive)
        XCTAssertEqual(long.status, .uriTooLong)
    }

    func testHandlerErrors_reachTheCaller() async throws {
        struct Failure: Error {}
        var router = HiveRouter()
        router.get("/fail") { _, _ in throw Failure() }
        let hive = HiveServer(
            workerID: 0, eventLoop: EmbeddedEventLoop(), registry: .heap(capacity: 1, workerCount: 1),
            limits: ConnectionLimits(), application: EmptyApplication(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let request = HiveRequest(
            head: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/fail"), connection: ConnectionID(rawValue: 1))
        do {
            _ = try await router.respond(to: request, hive: hive)
            XCTFail("the handler's error was swallowed")
        } catch is Failure {}
    }

    /// Routes added with `now:` answer from `respondNow` (no await); an async route leaves `respondNow` nil, and
    /// `respond` answers both kinds. What matching alone decides (404, 405, 414) is answered by `respondNow` too.
    func testImmediateRoutes_answerFromRespondNow_asyncRoutesLeaveItNil() async throws {
        var router = HiveRouter()
        router.get("/now/:id", now: { request, hive in .text("now \(request.parameters["id"] ?? "?") \(hive.workerID)") })
        router.on(.post, "/now", now: { _, _ in .text("posted now") })
        router.get("/later") { _, _ in
            await Task.yield()
            return .text("later")
        }
        // A trailing closure that never awaits is an immediate route too: Swift picks the `now:` overload for it.
        router.get("/plain") { _, _ in .text("plain") }
        let hive = Self.hive()
        func request(_ method: HTTPRequest.Method, _ target: String) -> HiveRequest {
            HiveRequest(head: HTTPRequest(method: method, scheme: "http", authority: "h", path: target),
                        connection: ConnectionID(rawValue: 1))
        }
        func text(_ response: HiveResponse?) -> String? { response.map { String(decoding: $0.body, as: UTF8.self) } }

        XCTAssertEqual(text(try router.respondNow(to: request(.get, "/now/7?x=1"), hive: hive)), "now 7 2")
        XCTAssertEqual(text(try router.respondNow(to: request(.head, "/now/7"), hive: hive)), "now 7 2", "HEAD by GET")
        XCTAssertEqual(text(try router.respondNow(to: request(.post, "/now"), hive: hive)), "posted now")
        XCTAssertNil(try router.respondNow(to: request(.get, "/later"), hive: hive), "an async route awaits")
        XCTAssertEqual(text(try router.respondNow(to: request(.get, "/plain"), hive: hive)), "plain")
        XCTAssertEqual(try router.respondNow(to: request(.get, "/nope"), hive: hive)?.status, .notFound)
        XCTAssertEqual(try router.respondNow(to: request(.delete, "/now"), hive: hive)?.status, .methodNotAllowed)
        XCTAssertEqual(
            try router.respondNow(to: request(.get, "/" + String(repeating: "x", count: 5000)), hive: hive)?.status,
            .uriTooLong)

        let now = try await router.respond(to: request(.get, "/now/8"), hive: hive)
        XCTAssertEqual(text(now), "now 8 2")
        let later = try await router.respond(to: request(.get, "/later"), hive: hive)
        XCTAssertEqual(text(later), "later")
    }

    func testImmediateHandlerErrors_reachTheCaller() throws {
        struct Failure: Error {}
        var router = HiveRouter()
        router.get("/fail", now: { _, _ in throw Failure() })
        let request = HiveRequest(
            head: HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/fail"), connection: ConnectionID(rawValue: 1))
        XCTAssertThrowsError(try router.respondNow(to: request, hive: Self.hive())) { XCTAssertTrue($0 is Failure) }
    }

    private static func hive() -> HiveServer {
        HiveServer(
            workerID: 2, eventLoop: EmbeddedEventLoop(), registry: .heap(capacity: 1, workerCount: 4),
            limits: ConnectionLimits(), application: EmptyApplication(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    struct EmptyApplication: HiveApplication {}
}

extension HiveRouter.Match {
    var route: HiveRouter.Route? {
        if case .found(let route, _) = self { route } else { nil }
    }
}
