//! Write-ahead log backends (being written: see the persistence issue).
