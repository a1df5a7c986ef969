//! hosts and resolv.conf editing with podman's semantics.
