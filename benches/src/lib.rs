//! Shared builders for the gcert benchmarks.
