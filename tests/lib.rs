//! Shared helpers for netctl integration tests live in the test files; this library is empty.
