//! nftables rule generation for netctl's one table.
