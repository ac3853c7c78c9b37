#if canImport(Glibc)
import Glibc
#endif

// The master's own mappings of the per-connection records (slots, channels, users): it writes a slot when it
// reserves it and reads slots for status, metrics and reclaiming, and every page it touches then stays in its
// page table, so RSS counted each page of slots twice, in the master and in the owning worker (~130 B per
// connection in the master at 100,000 connections). Dropping the master's page-table entries after a while gives
// that back without changing any word: the pages belong to the memfd, and the master's next access maps the same
// page again (a minor fault, once per 32 slots).
extension SharedRegistry {
    /// Unmaps this process's pages of the per-connection records, keeping their contents (`MADV_DONTNEED` on a
    /// shared file mapping only removes the page-table entries; the next access maps the memfd's page again).
    /// Does nothing for a heap registry, where it would zero the memory. Returns false when `madvise` failed.
    @discardableResult
    package func dropMappedRecordPages() -> Bool {
        guard !ownsHeap else { return true }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        // From the first page wholly inside the slots to the end of the mapping (the headers' page stays).
        let first = (recordsOffset + pageSize - 1) / pageSize * pageSize
        let end = byteCount / pageSize * pageSize
        guard end > first else { return true }
        return madvise(UnsafeMutableRawPointer(base) + first, end - first, MADV_DONTNEED) == 0
    }

    /// Where the slots start, in bytes from the start of the mapping.
    var recordsOffset: Int {
        (Header.words + RedisField.words + workerCount * WorkerField.words) * 8
    }
}
