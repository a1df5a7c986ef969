//! netctl's desired-state schema and podman's network wire types.
