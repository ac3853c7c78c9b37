#if canImport(Glibc)
import Glibc
#endif

/// A run dir or control socket Hive may trust: owned by this user and writable by nobody else. Otherwise another
/// user could put their own `hive.sock` there (and receive root's pushes) or their own `hive.pid` (and make `stop`
/// signal another process). Checked with `lstat`, so a symbolic link is refused rather than followed.
package enum PrivatePath {
    package enum Kind: Sendable {
        case directory
        case socket
    }

    /// What `lstat` found at a path.
    package struct Facts: Sendable, Equatable {
        package var type: mode_t  // st_mode & S_IFMT
        package var owner: uid_t
        package var permissions: mode_t  // st_mode & 0o7777

        package init(type: mode_t, owner: uid_t, permissions: mode_t) {
            self.type = type
            self.owner = owner
            self.permissions = permissions
        }
    }

    /// A path that fails the check; the text names it, says what is wrong and what to do.
    package struct Refusal: Error, CustomStringConvertible, Equatable {
        package let description: String
    }

    /// The facts of `path` without following a final symbolic link, or nil when nothing is there.
    package static func facts(of path: String) throws -> Facts? {
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
    package static func check(_ path: String, is kind: Kind, name: String, remedy: String) throws -> Bool {
        guard let facts = try facts(of: path) else { return false }
        if let problem = problem(facts, kind: kind, user: geteuid()) {
            throw Refusal(description: "\(name) \(path) \(problem); \(remedy)")
        }
        return true
    }

    /// Throws a `Refusal` if the folder holding `path` lets another user rename `path` and put their own in its
    /// place after it was checked: that takes write access without the sticky bit (the sticky bit of `/tmp` stops
    /// others from renaming what they do not own). The folder itself is followed through links, as the kernel does.
    package static func checkParent(of path: String, name: String, remedy: String) throws {
        let parent = parentPath(of: path)
        var info = stat()
        guard stat(parent, &info) == 0 else {
            if errno == ENOENT { return }  // then `path` is missing too; creating it will say so
            throw SystemError("stat", while: "checking \(parent), the folder of \(path)")
        }
        let facts = Facts(type: info.st_mode & S_IFMT, owner: info.st_uid, permissions: info.st_mode & 0o7777)
        if let problem = parentProblem(facts, user: geteuid()) {
            throw Refusal(description: "folder \(parent) of \(name) \(path) \(problem); \(remedy)")
        }
    }

    /// Why a folder lets others swap what is in it, as the end of a sentence, or nil when it does not.
    package static func parentProblem(_ facts: Facts, user: uid_t) -> String? {
        if facts.owner != user && facts.owner != 0 {
            return "is owned by uid \(facts.owner), neither you (uid \(user)) nor root, who could swap it for their own"
        }
        if facts.permissions & 0o022 != 0 && facts.permissions & S_ISVTX == 0 {
            let octal = String(facts.permissions, radix: 8)
            return "is writable by other users without the sticky bit (mode 0\(octal)): another user could swap it "
                + "for their own"
        }
        return nil
    }

    /// `dirname`, without touching the file system: "." for a bare name, "/" for a top-level path.
    package static func parentPath(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        var parent = trimmed[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent.removeLast() }
        return parent.isEmpty ? "/" : String(parent)
    }

    /// Why `facts` make a path untrustworthy for `user`, as the end of a sentence, or nil when it is fine.
    package static func problem(_ facts: Facts, kind: Kind, user: uid_t) -> String? {
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
