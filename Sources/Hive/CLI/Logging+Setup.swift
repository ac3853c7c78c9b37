import Logging

enum LogLevelParser {
    static func parse(_ text: String) -> Logger.Level? { Logger.Level(rawValue: text.lowercased()) }
}

/// The only place that bootstraps swift-log; libraries take a Logger.
func makeLogger(level: String, label: String) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = LogLevelParser.parse(level) ?? .info
        return handler
    }
    return Logger(label: label)
}
