import NIOCore

/// One repeating timer per event loop for the keep-alive of all its WebSocket connections, instead of a ping timer
/// and a pong deadline scheduled for each connection (two tasks in the event loop's queue per idle connection,
/// about 0.2 KB each way). Every `period` it gives each handler the time; a handler pings when its interval has
/// passed and drops the connection when its pong deadline has.
///
/// Pings and deadlines are therefore late by at most one period, which is a tenth of the shorter of the ping
/// interval and the pong timeout, and never more than a second.
final class KeepAliveSweep {
    private let eventLoop: EventLoop
    private let tick: (NIODeadline) -> Void
    private var task: RepeatedTask?

    /// The sweep period for these limits (nil: keep-alive is off).
    static func period(for limits: WebSocketLimits) -> TimeAmount? {
        guard let interval = limits.pingInterval else { return nil }
        let tenth = min(interval, limits.pongTimeout).nanoseconds / 10
        return .nanoseconds(max(TimeAmount.milliseconds(10).nanoseconds, min(tenth, TimeAmount.seconds(1).nanoseconds)))
    }

    /// - Parameter tick: Gives the time to every handler (`WebSocketFrameHandler.keepAliveTick`); called on the
    ///   event loop every `period`.
    init(eventLoop: EventLoop, tick: @escaping (NIODeadline) -> Void) {
        self.eventLoop = eventLoop
        self.tick = tick
    }

    /// Starts ticking every `period`. Call on the event loop.
    func start(period: TimeAmount) {
        self.eventLoop.preconditionInEventLoop()
        self.task?.cancel()
        // Holds the sweep until `stop` cancels the task.
        let sweep = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.task = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            sweep.value.tick(sweep.value.eventLoop.now)
        }
    }

    /// Cancels the ticks (the fuzz target starts a sweep per input on one embedded loop).
    func stop() {
        self.task?.cancel()
        self.task = nil
    }
}

@available(*, unavailable)
extension KeepAliveSweep: Sendable {}
