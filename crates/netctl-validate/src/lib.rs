//! Parse and validate netctl desired-state TOML, reporting every error with its place.
