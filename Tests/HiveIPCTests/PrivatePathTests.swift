import Foundation
import Glibc
import XCTest

@testable import HiveIPC

final class PrivatePathTests: XCTestCase {
    private func facts(_ type: mode_t, owner: uid_t = 1000, _ permissions: mode_t) -> PrivatePath.Facts {
        PrivatePath.Facts(type: type, owner: owner, permissions: permissions)
    }

    func testOwnDirectory_notWritableByOthers_isAccepted() {
        for permissions: mode_t in [0o700, 0o755, 0o711, 0o1700] {
            XCTAssertNil(PrivatePath.problem(facts(S_IFDIR, permissions), kind: .directory, user: 1000), "\(permissions)")
        }
        XCTAssertNil(PrivatePath.problem(facts(S_IFSOCK, 0o600), kind: .socket, user: 1000))
    }

    func testAnotherUsersDirectory_isRefusedNamingBothUIDs() {
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFDIR, owner: 1001, 0o700), kind: .directory, user: 0),
            "is owned by uid 1001, not by you (uid 0)"
        )
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFSOCK, owner: 65534, 0o600), kind: .socket, user: 0),
            "is owned by uid 65534, not by you (uid 0)"
        )
    }

    func testGroupOrWorldWritable_isRefusedWithTheMode() {
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFDIR, 0o777), kind: .directory, user: 1000),
            "is writable by its group and others (mode 0777): another user could replace the files in it"
        )
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFDIR, 0o770), kind: .directory, user: 1000),
            "is writable by its group (mode 0770): another user could replace the files in it"
        )
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFDIR, 0o1777), kind: .directory, user: 1000),
            "is writable by its group and others (mode 01777): another user could replace the files in it"
        )
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFSOCK, 0o602), kind: .socket, user: 1000),
            "is writable by others (mode 0602): another user could use it"
        )
    }

    func testWrongType_orASymbolicLink_isRefused() {
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFLNK, 0o777), kind: .directory, user: 1000),
            "is a symbolic link, not a directory"
        )
        XCTAssertEqual(
            PrivatePath.problem(facts(S_IFREG, 0o600), kind: .socket, user: 1000), "is a regular file, not a Unix socket"
        )
    }

    func testCheck_onTheFileSystem_missingIsFine_symlinkAndOpenModeAreRefused() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hive-private-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        XCTAssertFalse(try PrivatePath.check(base, is: .directory, name: "run dir", remedy: "fix it"))
        XCTAssertEqual(mkdir(base, 0o700), 0)
        XCTAssertTrue(try PrivatePath.check(base, is: .directory, name: "run dir", remedy: "fix it"))

        let link = base + "/link"
        XCTAssertEqual(symlink(base, link), 0)
        XCTAssertThrowsError(try PrivatePath.check(link, is: .directory, name: "run dir", remedy: "fix it")) {
            XCTAssertEqual("\($0)", "run dir \(link) is a symbolic link, not a directory; fix it")
        }

        let open = base + "/open"
        XCTAssertEqual(mkdir(open, 0o700), 0)
        XCTAssertEqual(chmod(open, 0o777), 0)
        XCTAssertThrowsError(try PrivatePath.check(open, is: .directory, name: "run dir", remedy: "fix it")) {
            XCTAssertEqual(
                "\($0)",
                "run dir \(open) is writable by its group and others (mode 0777): another user could replace the files in it; fix it"
            )
        }
    }
}

final class PrivatePathParentTests: XCTestCase {
    private func folder(owner: uid_t, _ permissions: mode_t) -> PrivatePath.Facts {
        PrivatePath.Facts(type: S_IFDIR, owner: owner, permissions: permissions)
    }

    func testOwnOrRootsFolder_notWritableByOthers_orSticky_isAccepted() {
        XCTAssertNil(PrivatePath.parentProblem(folder(owner: 1000, 0o700), user: 1000))
        XCTAssertNil(PrivatePath.parentProblem(folder(owner: 0, 0o755), user: 1000))
        XCTAssertNil(PrivatePath.parentProblem(folder(owner: 0, 0o1777), user: 1000), "/tmp")
    }

    func testFolderOthersCanRenameIn_isRefused() {
        XCTAssertEqual(
            PrivatePath.parentProblem(folder(owner: 1000, 0o777), user: 1000),
            "is writable by other users without the sticky bit (mode 0777): another user could swap it for their own"
        )
        XCTAssertEqual(
            PrivatePath.parentProblem(folder(owner: 1001, 0o700), user: 1000),
            "is owned by uid 1001, neither you (uid 1000) nor root, who could swap it for their own"
        )
    }

    func testParentPath() {
        XCTAssertEqual(PrivatePath.parentPath(of: "/tmp/hive-9501"), "/tmp")
        XCTAssertEqual(PrivatePath.parentPath(of: "/tmp/hive-9501/"), "/tmp")
        XCTAssertEqual(PrivatePath.parentPath(of: "/run//hive/hive-1"), "/run//hive")
        XCTAssertEqual(PrivatePath.parentPath(of: "/hive"), "/")
        XCTAssertEqual(PrivatePath.parentPath(of: "run"), ".")
        XCTAssertEqual(PrivatePath.parentPath(of: "a/run"), "a")
    }
}
