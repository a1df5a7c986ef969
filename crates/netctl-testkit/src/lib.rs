//! Private network+mount namespace sandbox for privileged tests.
