//! A batch of nf_tables set-element changes, as the firewall describes it and the kernel seam
//! applies it: each element's key and value already in the bytes nf_tables stores, so the seam
//! sends them over `NETLINK_NETFILTER` without knowing any set's type, and the same batch as an
//! `nft -j` document for whatever speaks only that (the fake, and a fallback).

/// Changes to elements of sets and maps of one table, applied as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementBatch {
    /// The table's `NFPROTO_*` family number (1: `inet`).
    pub family: u8,
    pub table: String,
    /// In order; a delete after an add of the same elements removes them whether or not they
    /// were there.
    pub ops: Vec<SetElements>,
    /// The same batch as an `nft -j -f` document.
    pub json: String,
}

/// Elements added to, or deleted from, one set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElements {
    pub delete: bool,
    pub set: String,
    pub elements: Vec<SetElement>,
}

/// One element: its key, and for a map its value, as nf_tables registers hold them (a
/// concatenation's parts each padded to four bytes; numbers in network byte order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetElement {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
}
