//! Privileged sandbox tests.
