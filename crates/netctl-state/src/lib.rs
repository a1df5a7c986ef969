//! netctl's redb store: networks, containers, attachments, IPAM leases, helper processes.
