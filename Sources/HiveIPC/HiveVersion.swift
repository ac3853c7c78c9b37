/// The version `hive status` reports.
public enum HiveVersion {
    public static let current = "0.1.0"
}
