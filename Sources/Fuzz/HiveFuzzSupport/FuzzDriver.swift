import CHiveFuzz

#if canImport(Glibc)
import Glibc
#endif

/// The signature of `LLVMFuzzerTestOneInput`: one input, 0 to keep going. A crash, a trap or an ASan report is
/// what libFuzzer counts as a finding; the return value is not.
public typealias FuzzTest = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// Hands the process to libFuzzer (its usual flags: corpus directories, -max_total_time, -runs, a crash file to
/// reproduce) with `test` as the target. Each target also exports `test` as `LLVMFuzzerTestOneInput`, which
/// libFuzzer's runtime references.
public func runFuzzer(_ test: FuzzTest) -> Never {
    exit(CHiveFuzz_run(CommandLine.argc, CommandLine.unsafeArgv, test))
}

/// Stops the process with a message naming the broken property, so libFuzzer saves the input as a crash: a
/// wrong result is a finding just like a trap.
public func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        let text = "fuzz check failed: \(message())\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
        abort()
    }
}
