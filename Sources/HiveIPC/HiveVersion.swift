/// The version of the Hive library, which `status` reports (and `/metrics` as `hive_build_info`).
public enum HiveVersion {
    /// The version, "major.minor.patch".
    public static let current = "0.1.0"
}
