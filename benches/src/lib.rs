//! Shared helpers for the ringress benchmarks.
