#if canImport(Glibc)
import Glibc
#endif

/// A run dir or control socket Hive may trust: owned by this user and writable by nobody else. Otherwise another
/// user could put their own `hive.sock` there (and receive root's pushes) or their own `hive.pid` (and make `stop`
/// signal another process). Checked with `lstat`, so a symbolic link is refused rather than followed.
public enum PrivatePath {
    public enum Kind: Sendable {
        case directory
        case socket
    }

    /// What `lstat` found at a path.
    public struct Facts: Sendable, Equatable {
        public var type: mode_t  // st_mode & S_IFMT
        public var owner: uid_t
        public var permissions: mode_t  // st_mode & 0o7777

        public init(type: mode_t, owner: uid_t, permissions: mode_t) {
            self.type = type
            self.owner = owner
            self.permissions = permissions
        }
    }

    /// A path that fails the check; the text names it, says what is wrong and what to do.
    public struct Refusal: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// The facts of `path` without following a final symbolic link, or nil when nothing is there.
    public static func facts(of path: String) throws -> Facts? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("lstat", while: "checking \(path)")
        }
        return Facts(type: info.st_mode & S_IFMT, owner: info.st_uid, permissions: info.st_mode & 0o7777)
    }

    /// Throws a `Refusal` unless `path` is missing or is a `kind` this user owns that group and others cannot
    /// write. Returns whether the path exists.
    /// - Parameters:
    ///   - name: how the operator knows the path, e.g. "run dir" or "control socket".
    ///   - remedy: what to do about a refused path, e.g. "remove it or choose another --run-dir".
    @discardableResult
    public static func check(_ path: String, is kind: Kind, name: String, remedy: String) throws -> Bool {
        guard let facts = try facts(of: path) else { return false }
        if let problem = problem(facts, kind: kind, user: geteuid()) {
            throw Refusal(description: "\(name) \(path) \(problem); \(remedy)")
        }
        return true
    }

    /// Why `facts` make a path untrustworthy for `user`, as the end of a sentence, or nil when it is fine.
    public static func problem(_ facts: Facts, kind: Kind, user: uid_t) -> String? {
        let wanted: mode_t = kind == .directory ? S_IFDIR : S_IFSOCK
        if facts.type != wanted {
            let found =
                switch facts.type {
                case S_IFLNK: "a symbolic link"
                case S_IFDIR: "a directory"
                case S_IFREG: "a regular file"
                case S_IFSOCK: "a socket"
                default: "a special file"
                }
            return "is \(found), not \(kind == .directory ? "a directory" : "a Unix socket")"
        }
        if facts.owner != user {
            return "is owned by uid \(facts.owner), not by you (uid \(user))"
        }
        if facts.permissions & 0o022 != 0 {
            let writers =
                switch facts.permissions & 0o022 {
                case 0o020: "its group"
                case 0o002: "others"
                default: "its group and others"
                }
            let risk = kind == .directory ? "another user could replace the files in it" : "another user could use it"
            return "is writable by \(writers) (mode 0\(String(facts.permissions, radix: 8))): \(risk)"
        }
        return nil
    }
}
