//! The redb store: `<state_dir>/state.redb`.
//!
//! Invariants:
//! * One netctl operation is one write transaction ([`Store::write`]), committed with immediate
//!   durability before `write` returns. Readers ([`Store::read`]) see a snapshot: the state
//!   before or after a commit, never a mix. A process killed at any moment leaves the last
//!   committed state, which the next open recovers.
//! * Every mutating method of [`WriteTxn`] checks everything it can before it writes anything, so
//!   a method that returns an error has changed nothing, even inside a transaction that goes on
//!   and commits.
//! * IPAM bookkeeping is three tables kept in step by [`WriteTxn::allocate`] and
//!   [`WriteTxn::release`] only: `leases` (network, subnet, address → container),
//!   `ipam_allocations` ((network, container) → the addresses, podman's `ids` bucket) and
//!   `ipam_last_ip` ((network, subnet) → the last automatically assigned address).
//!   [`StateRead::consistency_problems`] checks that they, and the attachments, agree.
//! * The store is opened for writing only under the operation lock ([`crate::OperationLock`]),
//!   in redb's single-writer mode: one writer, and any number of read-only handles
//!   ([`Store::open_read_only`]) in other processes that follow its commits, so a read (`show`,
//!   `inspect`) does not wait for a running apply.
//!
//! Values are JSON so a newer netctl can add optional fields without a schema change; keys are
//! redb tuples ordered for the range scans the code does (all leases of a network, of a subnet;
//! all attachments of a container). The `meta` table's types never change, so any netctl can
//! read the schema version of any store.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipnet::IpNet;
use redb::{
    ConcurrencyMode, Database, DatabaseError, Durability, Key, ReadOnlyDatabase, ReadTransaction,
    ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle as _, Value,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use self::sealed::Tables as _;
use crate::dir::{FILE_MODE, STORE_FILE, ensure_mode, ensure_state_dir, open_private_file};
use crate::error::{IpamError, StateError, StorageContext};
use crate::ipam::{SubnetRange, TakenAddrs, ip_to_u128, u128_to_ip};
use crate::records::{
    AttachmentRecord, ContainerRecord, DnsServerRecord, Generation, HelperRecord, Lease, MacAddr,
    NetworkRecord, is_valid_id,
};

/// The schema version this netctl writes. Bump it when a table's key or value type changes or a
/// record changes incompatibly, and add the migration from the previous version to
/// `Store::check_schema`.
pub const SCHEMA_VERSION: u64 = 1;

/// How many applied generations are kept; older ones are dropped when a new one is recorded.
pub const GENERATIONS_KEPT: u64 = 100;

/// redb's page cache limit. The store is small; the default (1 GiB) is far more than it needs.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

const META_SCHEMA_VERSION: &str = "schema_version";
const META_WRITTEN_BY: &str = "schema_written_by";

const META: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
const NETWORKS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("networks");
const CONTAINERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("containers");
/// (container, network) → attachment
const ATTACHMENTS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("attachments");
/// (network, subnet in CIDR form, address as a number) → container
const LEASES: TableDefinition<'static, (&str, &str, u128), &str> = TableDefinition::new("leases");
/// (network, container) → the container's addresses on the network (JSON list of IP/prefix)
const ALLOCATIONS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("ipam_allocations");
/// (network, subnet in CIDR form) → last automatically assigned address
const LAST_IP: TableDefinition<'static, (&str, &str), u128> = TableDefinition::new("ipam_last_ip");
const HELPERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("helpers");
const GENERATIONS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("generations");
/// aardvark-dns servers netctl runs, keyed by config directory (added after schema 1 was
/// released: created when an older store is opened).
const DNS_SERVERS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("dns_servers");

/// The open store.
pub struct Store {
    db: Handle,
    path: PathBuf,
}

/// A store opened to write (under the operation lock) or only to read.
enum Handle {
    Writer(Database),
    Reader(ReadOnlyDatabase),
}

impl Handle {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Handle::Writer(db) => db.begin_read(),
            Handle::Reader(db) => db.begin_read(),
        }
    }
}

/// How every netctl process shares the store file: one writer (the lock holder) and readers.
const CONCURRENCY: ConcurrencyMode = ConcurrencyMode::SingleWriter;

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens `<state_dir>/state.redb`, creating the directory (0700) and the store (0600) if
    /// needed, recovering it if a process died while writing, and checking its schema version.
    ///
    /// Call it while holding the [`crate::OperationLock`]; another process that has the store
    /// open makes this fail with [`StateError::StoreInUse`].
    pub fn open(state_dir: &Path) -> Result<Store, StateError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join(STORE_FILE);
        // Create the file ourselves so it is 0600 from its first byte; redb would create it
        // with the umask's mode.
        open_private_file(&path).map_err(|source| StateError::CreateStore {
            path: path.clone(),
            source,
        })?;
        ensure_mode(&path, FILE_MODE)?;
        let mut builder = Database::builder();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(CONCURRENCY);
        let db = builder.create(&path).map_err(|source| match source {
            DatabaseError::DatabaseAlreadyOpen => StateError::StoreInUse { path: path.clone() },
            source => StateError::Open {
                path: path.clone(),
                source,
            },
        })?;
        let store = Store {
            db: Handle::Writer(db),
            path,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Opens the store only to read, without the operation lock, beside a writer that may be
    /// running. `None` when that cannot be done as things are (no store yet, a store a killed
    /// writer left needing recovery, a writer of an older netctl holding the whole file): the
    /// caller then opens it the usual way, under the lock. The state directory is trusted only
    /// if it is netctl's user's, as for [`Store::open`].
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Store>, StateError> {
        let path = state_dir.join(STORE_FILE);
        if !crate::dir::is_trusted_state_dir(state_dir)? {
            return Ok(None);
        }
        let Ok(file) = crate::dir::open_existing_private_file(&path) else {
            return Ok(None);
        };
        let mut builder = Database::builder();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(CONCURRENCY);
        let Ok(backend) = redb::backends::FileBackend::new(file) else {
            return Ok(None);
        };
        let Ok(db) = builder.open_read_only_with_backend(backend) else {
            return Ok(None);
        };
        let store = Store {
            db: Handle::Reader(db),
            path,
        };
        match store.check_schema() {
            Ok(()) => Ok(Some(store)),
            Err(StateError::ReadOnly) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read view: a snapshot of the last committed state.
    pub fn read(&self) -> Result<ReadTxn, StateError> {
        let txn = self
            .db
            .begin_read()
            .ctx(|| "beginning a read transaction".to_owned())?;
        Ok(ReadTxn { txn })
    }

    /// Runs `f` in one write transaction and commits it durably if `f` succeeds; if `f` fails
    /// nothing it did is kept.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut WriteTxn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StateError>,
    {
        let Handle::Writer(db) = &self.db else {
            return Err(StateError::ReadOnly.into());
        };
        let mut txn = db
            .begin_write()
            .ctx(|| "beginning a write transaction".to_owned())?;
        // Immediate is redb's default; set it so the guarantee does not rest on a default.
        txn.set_durability(Durability::Immediate)
            .ctx(|| "setting immediate durability".to_owned())?;
        let mut w = WriteTxn { txn };
        match f(&mut w) {
            Ok(value) => {
                w.txn
                    .commit()
                    .ctx(|| "committing a write transaction".to_owned())?;
                Ok(value)
            }
            Err(e) => {
                if let Err(abort) = w.txn.abort() {
                    tracing::warn!(error = %abort, "aborting a failed write transaction");
                }
                Err(e)
            }
        }
    }

    fn check_schema(&self) -> Result<(), StateError> {
        let found = {
            let txn = self
                .db
                .begin_read()
                .ctx(|| "reading the schema version".to_owned())?;
            match txn.open_table(META) {
                Ok(meta) => {
                    let get = |key: &str| {
                        meta.get(key)
                            .map(|g| g.map(|v| v.value().to_owned()))
                            .ctx(|| "reading the schema version".to_owned())
                    };
                    get(META_SCHEMA_VERSION)?
                        .map(|v| Ok::<_, StateError>((v, get(META_WRITTEN_BY)?)))
                }
                Err(TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e).ctx(|| "reading the schema version".to_owned()),
            }
        };
        let Some(found) = found else {
            // A new store (initialisation is one transaction, so there is no half-made one).
            return self.write(WriteTxn::initialise);
        };
        let (text, written_by) = found?;
        let version: u64 = match text.parse() {
            Ok(v) if v > 0 => v,
            _ => {
                return Err(StateError::SchemaInvalid {
                    path: self.path.clone(),
                    found: text,
                });
            }
        };
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
                written_by: written_by.unwrap_or_else(|| "unknown".to_owned()),
            });
        }
        // Version 1 is the first; migrations from older versions go here when there are any.
        // Tables added since are created on first open, so read views never meet a missing one.
        let missing = matches!(
            self.db
                .begin_read()
                .ctx(|| "reading the store".to_owned())?
                .open_table(DNS_SERVERS),
            Err(TableError::TableDoesNotExist(_))
        );
        if missing {
            self.write(|tx| tx.open_mut(DNS_SERVERS).map(drop))?;
        }
        Ok(())
    }
}

/// A read view of the store: one redb read transaction, so a consistent snapshot.
pub struct ReadTxn {
    txn: ReadTransaction,
}

impl fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTxn").finish_non_exhaustive()
    }
}

/// The write transaction of one operation. See [`Store::write`].
pub struct WriteTxn {
    txn: WriteTransaction,
}

impl fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn").finish_non_exhaustive()
    }
}

mod sealed {
    use redb::{Key, ReadableTable, TableDefinition, Value};

    use crate::error::StateError;

    /// How a transaction opens a table for reading. Private: the trait users see is
    /// [`super::StateRead`], whose methods are written once over this.
    pub trait Tables {
        fn open_ro<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<impl ReadableTable<K, V> + '_, StateError>;
    }
}

impl sealed::Tables for ReadTxn {
    fn open_ro<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StateError> {
        self.txn
            .open_table(def)
            .ctx(|| format!("opening table {}", def.name()))
    }
}

impl sealed::Tables for WriteTxn {
    fn open_ro<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StateError> {
        self.txn
            .open_table(def)
            .ctx(|| format!("opening table {}", def.name()))
    }
}

fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|source| StateError::Decode {
        what: what(),
        source,
    })
}

fn encode<T: Serialize>(value: &T, what: impl FnOnce() -> String) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|source| StateError::Encode {
        what: what(),
        source,
    })
}

/// The key form of a subnet: its network address in CIDR notation.
fn subnet_key(subnet: &IpNet) -> String {
    subnet.trunc().to_string()
}

fn parse_subnet_key(text: &str) -> Result<IpNet, StateError> {
    text.parse().map_err(|_| StateError::Corrupt {
        what: "a lease key".to_owned(),
        reason: format!("{text:?} is not a subnet"),
    })
}

/// A container's addresses on one network, as IPAM recorded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub network: String,
    pub container: String,
    /// One address per subnet, with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
}

/// Reading the store, the same way in a read view and inside a write transaction.
pub trait StateRead: sealed::Tables {
    /// The schema version recorded in the store.
    fn schema_version(&self) -> Result<u64, StateError> {
        let meta = self.open_ro(META)?;
        let text = meta
            .get(META_SCHEMA_VERSION)
            .ctx(|| "reading the schema version".to_owned())?
            .map(|v| v.value().to_owned())
            .unwrap_or_default();
        text.parse().map_err(|_| StateError::Corrupt {
            what: "the schema version".to_owned(),
            reason: format!("{text:?} is not a number"),
        })
    }

    fn network(&self, name: &str) -> Result<Option<NetworkRecord>, StateError> {
        let t = self.open_ro(NETWORKS)?;
        let what = || format!("network {name}");
        t.get(name)
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// All networks, ordered by name.
    fn networks(&self) -> Result<Vec<NetworkRecord>, StateError> {
        let t = self.open_ro(NETWORKS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing networks".to_owned())? {
            let (k, v) = entry.ctx(|| "listing networks".to_owned())?;
            out.push(decode(v.value(), || format!("network {}", k.value()))?);
        }
        Ok(out)
    }

    /// A network by exact name, else by a unique ID prefix, as podman looks networks up.
    fn find_network(&self, name_or_id: &str) -> Result<NetworkRecord, StateError> {
        if let Some(n) = self.network(name_or_id)? {
            return Ok(n);
        }
        let mut hits = self
            .networks()?
            .into_iter()
            .filter(|n| n.id.starts_with(name_or_id));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(StateError::AmbiguousNetworkId {
                query: name_or_id.to_owned(),
            }),
            (None, _) => Err(StateError::NetworkNotFound {
                query: name_or_id.to_owned(),
            }),
        }
    }

    fn container(&self, name: &str) -> Result<Option<ContainerRecord>, StateError> {
        let t = self.open_ro(CONTAINERS)?;
        let what = || format!("container {name}");
        t.get(name)
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// All containers, ordered by name.
    fn containers(&self) -> Result<Vec<ContainerRecord>, StateError> {
        let t = self.open_ro(CONTAINERS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing containers".to_owned())? {
            let (k, v) = entry.ctx(|| "listing containers".to_owned())?;
            out.push(decode(v.value(), || format!("container {}", k.value()))?);
        }
        Ok(out)
    }

    /// A container by exact name, else by a unique ID prefix.
    fn find_container(&self, name_or_id: &str) -> Result<ContainerRecord, StateError> {
        if let Some(c) = self.container(name_or_id)? {
            return Ok(c);
        }
        let mut hits = self
            .containers()?
            .into_iter()
            .filter(|c| c.id.starts_with(name_or_id));
        match (hits.next(), hits.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(StateError::AmbiguousContainerId {
                query: name_or_id.to_owned(),
            }),
            (None, _) => Err(StateError::ContainerNotFound {
                query: name_or_id.to_owned(),
            }),
        }
    }

    fn attachment(
        &self,
        container: &str,
        network: &str,
    ) -> Result<Option<AttachmentRecord>, StateError> {
        let t = self.open_ro(ATTACHMENTS)?;
        let what = || format!("attachment of container {container} to network {network}");
        t.get((container, network))
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// All attachments, ordered by container, then network.
    fn attachments(&self) -> Result<Vec<AttachmentRecord>, StateError> {
        let t = self.open_ro(ATTACHMENTS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing attachments".to_owned())? {
            let (k, v) = entry.ctx(|| "listing attachments".to_owned())?;
            let (c, n) = k.value();
            out.push(decode(v.value(), || {
                format!("attachment of container {c} to network {n}")
            })?);
        }
        Ok(out)
    }

    /// The attachments of one container, ordered by network.
    fn container_attachments(&self, container: &str) -> Result<Vec<AttachmentRecord>, StateError> {
        let t = self.open_ro(ATTACHMENTS)?;
        let what = || format!("listing attachments of container {container}");
        let mut out = Vec::new();
        for entry in t.range((container, "")..).ctx(what)? {
            let (k, v) = entry.ctx(what)?;
            let (c, n) = k.value();
            if c != container {
                break;
            }
            out.push(decode(v.value(), || {
                format!("attachment of container {c} to network {n}")
            })?);
        }
        Ok(out)
    }

    /// Whether any container is attached to `network`. Reads keys only (no record is decoded),
    /// so a teardown that asks it once per detached container stays cheap.
    fn network_in_use(&self, network: &str) -> Result<bool, StateError> {
        let t = self.open_ro(ATTACHMENTS)?;
        let what = || format!("looking for attachments to network {network}");
        for entry in t.iter().ctx(what)? {
            let (k, _) = entry.ctx(what)?;
            if k.value().1 == network {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The attachments to one network, ordered by container.
    fn network_attachments(&self, network: &str) -> Result<Vec<AttachmentRecord>, StateError> {
        Ok(self
            .attachments()?
            .into_iter()
            .filter(|a| a.network == network)
            .collect())
    }

    /// The leases of one network, ordered by subnet key, then address.
    fn leases(&self, network: &str) -> Result<Vec<Lease>, StateError> {
        let t = self.open_ro(LEASES)?;
        let what = || format!("listing leases of network {network}");
        let mut out = Vec::new();
        for entry in t.range((network, "", 0u128)..).ctx(what)? {
            let (k, v) = entry.ctx(what)?;
            let (n, subnet, addr) = k.value();
            if n != network {
                break;
            }
            out.push(lease_from_key(n, subnet, addr, v.value())?);
        }
        Ok(out)
    }

    /// Who holds `address` of `subnet` on `network`, if anyone (one point lookup).
    fn lease_holder(
        &self,
        network: &str,
        subnet: &IpNet,
        address: IpAddr,
    ) -> Result<Option<String>, StateError> {
        let t = self.open_ro(LEASES)?;
        let what = || format!("the holder of {address} on network {network}");
        let key = subnet_key(subnet);
        Ok(t.get((network, key.as_str(), ip_to_u128(address)))
            .ctx(what)?
            .map(|v| v.value().to_owned()))
    }

    /// Every lease of every network.
    fn all_leases(&self) -> Result<Vec<Lease>, StateError> {
        let t = self.open_ro(LEASES)?;
        let what = || "listing leases".to_owned();
        let mut out = Vec::new();
        for entry in t.iter().ctx(what)? {
            let (k, v) = entry.ctx(what)?;
            let (n, subnet, addr) = k.value();
            out.push(lease_from_key(n, subnet, addr, v.value())?);
        }
        Ok(out)
    }

    /// The addresses IPAM gave `container` on `network`, if any.
    fn allocation(&self, network: &str, container: &str) -> Result<Option<Vec<IpNet>>, StateError> {
        let t = self.open_ro(ALLOCATIONS)?;
        let what = || format!("addresses of container {container} on network {network}");
        t.get((network, container))
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// Every IPAM allocation, ordered by network, then container.
    fn allocations(&self) -> Result<Vec<Allocation>, StateError> {
        let t = self.open_ro(ALLOCATIONS)?;
        let what = || "listing allocations".to_owned();
        let mut out = Vec::new();
        for entry in t.iter().ctx(what)? {
            let (k, v) = entry.ctx(what)?;
            let (network, container) = k.value();
            out.push(Allocation {
                network: network.to_owned(),
                container: container.to_owned(),
                addresses: decode(v.value(), || {
                    format!("addresses of container {container} on network {network}")
                })?,
            });
        }
        Ok(out)
    }

    /// The address the last automatic allocation in `subnet` of `network` handed out.
    fn last_allocated(&self, network: &str, subnet: &IpNet) -> Result<Option<IpAddr>, StateError> {
        let t = self.open_ro(LAST_IP)?;
        let key = subnet_key(subnet);
        let v6 = matches!(subnet, IpNet::V6(_));
        Ok(t.get((network, key.as_str()))
            .ctx(|| format!("reading the last address of {key} on network {network}"))?
            .map(|v| u128_to_ip(v.value(), v6)))
    }

    fn helper(&self, container: &str) -> Result<Option<HelperRecord>, StateError> {
        let t = self.open_ro(HELPERS)?;
        let what = || format!("helper process of container {container}");
        t.get(container)
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// The aardvark-dns servers netctl runs, ordered by config directory.
    fn dns_servers(&self) -> Result<Vec<DnsServerRecord>, StateError> {
        let t = self.open_ro(DNS_SERVERS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing DNS servers".to_owned())? {
            let (k, v) = entry.ctx(|| "listing DNS servers".to_owned())?;
            out.push(decode(v.value(), || {
                format!("DNS server of {}", k.value())
            })?);
        }
        Ok(out)
    }

    /// All helper processes, ordered by container.
    fn helpers(&self) -> Result<Vec<HelperRecord>, StateError> {
        let t = self.open_ro(HELPERS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing helper processes".to_owned())? {
            let (k, v) = entry.ctx(|| "listing helper processes".to_owned())?;
            out.push(decode(v.value(), || {
                format!("helper process of container {}", k.value())
            })?);
        }
        Ok(out)
    }

    fn generation(&self, number: u64) -> Result<Option<Generation>, StateError> {
        let t = self.open_ro(GENERATIONS)?;
        let what = || format!("generation {number}");
        t.get(number)
            .ctx(what)?
            .map(|v| decode(v.value(), what))
            .transpose()
    }

    /// The last applied generation.
    fn latest_generation(&self) -> Result<Option<Generation>, StateError> {
        let t = self.open_ro(GENERATIONS)?;
        let what = || "reading the latest generation".to_owned();
        t.last()
            .ctx(what)?
            .map(|(_, v)| decode(v.value(), what))
            .transpose()
    }

    /// The kept generations, oldest first.
    fn generations(&self) -> Result<Vec<Generation>, StateError> {
        let t = self.open_ro(GENERATIONS)?;
        let mut out = Vec::new();
        for entry in t.iter().ctx(|| "listing generations".to_owned())? {
            let (k, v) = entry.ctx(|| "listing generations".to_owned())?;
            out.push(decode(v.value(), || format!("generation {}", k.value()))?);
        }
        Ok(out)
    }

    /// Every subnet of every recorded network: the `used` list of [`crate::choose_ipv4_subnet`].
    fn used_subnets(&self) -> Result<Vec<IpNet>, StateError> {
        Ok(self
            .networks()?
            .iter()
            .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
            .collect())
    }

    /// The interface names of recorded networks: the `recorded` list of
    /// [`crate::choose_bridge_name`].
    fn bridge_names(&self) -> Result<Vec<String>, StateError> {
        Ok(self
            .networks()?
            .into_iter()
            .map(|n| n.network_interface)
            .collect())
    }

    /// Ways in which the records disagree with each other, sorted; empty when they agree. The
    /// store never produces any: this is for tests and for a `show` that wants to say so.
    fn consistency_problems(&self) -> Result<Vec<String>, StateError> {
        let mut problems = Vec::new();
        let networks: BTreeMap<String, NetworkRecord> = self
            .networks()?
            .into_iter()
            .map(|n| (n.name.clone(), n))
            .collect();
        let containers: BTreeSet<String> = self.containers()?.into_iter().map(|c| c.name).collect();
        let allocations: BTreeMap<(String, String), Vec<IpNet>> = self
            .allocations()?
            .into_iter()
            .map(|a| ((a.network, a.container), a.addresses))
            .collect();
        let leases = self.all_leases()?;
        let leased: BTreeMap<(String, IpAddr), String> = leases
            .iter()
            .map(|l| ((l.network.clone(), l.address), l.container.clone()))
            .collect();

        for l in &leases {
            let held = allocations
                .get(&(l.network.clone(), l.container.clone()))
                .is_some_and(|addrs| {
                    addrs
                        .iter()
                        .any(|a| a.addr() == l.address && a.trunc() == l.subnet)
                });
            if !held {
                problems.push(format!(
                    "lease {} ({}) on network {} for container {} has no allocation",
                    l.address, l.subnet, l.network, l.container
                ));
            }
            match networks.get(&l.network) {
                None => problems.push(format!(
                    "lease {} belongs to network {}, which is not recorded",
                    l.address, l.network
                )),
                Some(n) if !n.subnets.iter().any(|s| s.subnet == l.subnet) => {
                    problems.push(format!(
                        "lease {} is in subnet {}, which network {} does not have",
                        l.address, l.subnet, l.network
                    ));
                }
                Some(_) => {}
            }
        }
        for ((network, container), addrs) in &allocations {
            for a in addrs {
                if leased.get(&(network.clone(), a.addr())) != Some(container) {
                    problems.push(format!(
                        "allocation of {a} to container {container} on network {network} has no lease"
                    ));
                }
            }
        }
        for a in self.attachments()? {
            if !containers.contains(&a.container) {
                problems.push(format!(
                    "attachment of container {} to network {}: container not recorded",
                    a.container, a.network
                ));
            }
            if !networks.contains_key(&a.network) {
                problems.push(format!(
                    "attachment of container {} to network {}: network not recorded",
                    a.container, a.network
                ));
            }
            let allocated = allocations
                .get(&(a.network.clone(), a.container.clone()))
                .cloned()
                .unwrap_or_default();
            if allocated != a.addresses {
                problems.push(format!(
                    "attachment of container {} to network {} lists {:?} but IPAM holds {:?}",
                    a.container, a.network, a.addresses, allocated
                ));
            }
        }
        problems.sort();
        Ok(problems)
    }
}

impl StateRead for ReadTxn {}
impl StateRead for WriteTxn {}

fn lease_from_key(
    network: &str,
    subnet: &str,
    addr: u128,
    container: &str,
) -> Result<Lease, StateError> {
    let subnet = parse_subnet_key(subnet)?;
    Ok(Lease {
        network: network.to_owned(),
        address: u128_to_ip(addr, matches!(subnet, IpNet::V6(_))),
        subnet,
        container: container.to_owned(),
    })
}

/// The leases of one subnet, as the IPAM core sees them.
struct SubnetLeases<'t, T> {
    table: &'t T,
    network: &'t str,
    subnet: &'t str,
}

impl<T> TakenAddrs for SubnetLeases<'_, T>
where
    T: ReadableTable<(&'static str, &'static str, u128), &'static str>,
{
    type Error = redb::StorageError;

    fn taken_in(
        &self,
        lo: u128,
        hi: u128,
    ) -> Result<impl Iterator<Item = Result<u128, Self::Error>> + '_, Self::Error> {
        let range = self
            .table
            .range((self.network, self.subnet, lo)..=(self.network, self.subnet, hi))?;
        Ok(range.map(|entry| entry.map(|(k, _)| k.value().2)))
    }
}

/// What a caller asks of IPAM for one container on one network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocRequest {
    /// Addresses the container must get, at most one per subnet; subnets without one get the
    /// next free address.
    pub static_ips: Vec<IpAddr>,
}

/// Everything that makes an attachment; see [`WriteTxn::attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub container: String,
    pub network: String,
    pub static_ips: Vec<IpAddr>,
    /// A declared MAC; a random locally administered one is generated (once) otherwise.
    pub mac: Option<MacAddr>,
    pub aliases: Vec<String>,
    /// A declared interface name; the lowest free `ethN` of the container otherwise.
    pub interface: Option<String>,
    /// The default routes' metric, as the planner chose it.
    pub metric: Option<u32>,
}

impl WriteTxn {
    fn initialise(&mut self) -> Result<(), StateError> {
        // Opening a table in a write transaction creates it: make them all, so read views never
        // meet a missing table.
        {
            let mut meta = self.open_mut(META)?;
            self.open_mut(NETWORKS)?;
            self.open_mut(CONTAINERS)?;
            self.open_mut(ATTACHMENTS)?;
            self.open_mut(LEASES)?;
            self.open_mut(ALLOCATIONS)?;
            self.open_mut(LAST_IP)?;
            self.open_mut(HELPERS)?;
            self.open_mut(GENERATIONS)?;
            self.open_mut(DNS_SERVERS)?;
            let what = || "recording the schema version".to_owned();
            meta.insert(META_SCHEMA_VERSION, SCHEMA_VERSION.to_string().as_str())
                .ctx(what)?;
            meta.insert(META_WRITTEN_BY, env!("CARGO_PKG_VERSION"))
                .ctx(what)?;
        }
        Ok(())
    }

    fn open_mut<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<redb::Table<'_, K, V>, StateError> {
        self.txn
            .open_table(def)
            .ctx(|| format!("opening table {} for writing", def.name()))
    }

    /// Records a network, replacing the record of the same name. Refuses a malformed record, and
    /// a new subnet list that drops a subnet which still has leases.
    pub fn put_network(&mut self, network: &NetworkRecord) -> Result<(), StateError> {
        let invalid = |reason: String| StateError::InvalidRecord {
            what: format!("network {}", network.name),
            reason,
        };
        if network.name.is_empty() {
            return Err(invalid("the name is empty".to_owned()));
        }
        if !is_valid_id(&network.id) {
            return Err(invalid(format!(
                "ID {:?} is not 64 lowercase hex characters",
                network.id
            )));
        }
        for (i, s) in network.subnets.iter().enumerate() {
            if s.subnet != s.subnet.trunc() {
                return Err(invalid(format!(
                    "subnet {} is not in network-address form ({})",
                    s.subnet,
                    s.subnet.trunc()
                )));
            }
            if let Some(gw) = s.gateway
                && !s.subnet.contains(&gw)
            {
                return Err(invalid(format!("gateway {gw} not in subnet {}", s.subnet)));
            }
            if let Some(range) = s.lease_range {
                for bound in [range.start, range.end].into_iter().flatten() {
                    if !s.subnet.contains(&bound) {
                        return Err(invalid(format!(
                            "lease range bound {bound} not in subnet {}",
                            s.subnet
                        )));
                    }
                }
            }
            if let Some(other) = network.subnets[..i]
                .iter()
                .find(|o| crate::subnet::overlaps(&o.subnet, &s.subnet))
            {
                return Err(invalid(format!(
                    "subnets {} and {} overlap",
                    other.subnet, s.subnet
                )));
            }
        }
        if let Some(lease) = self
            .leases(&network.name)?
            .into_iter()
            .find(|l| !network.subnets.iter().any(|s| s.subnet == l.subnet))
        {
            return Err(invalid(format!(
                "subnet {} still has leases (container {} holds {})",
                lease.subnet, lease.container, lease.address
            )));
        }
        let bytes = encode(network, || format!("network {}", network.name))?;
        self.open_mut(NETWORKS)?
            .insert(network.name.as_str(), bytes.as_slice())
            .ctx(|| format!("recording network {}", network.name))?;
        Ok(())
    }

    /// Forgets a network and its IPAM state. Refuses while containers are attached to it or
    /// hold addresses on it (podman leaves IPAM buckets behind here; netctl does not).
    pub fn remove_network(&mut self, name: &str) -> Result<Option<NetworkRecord>, StateError> {
        let Some(record) = self.network(name)? else {
            return Ok(None);
        };
        let mut users: BTreeSet<String> = self
            .network_attachments(name)?
            .into_iter()
            .map(|a| a.container)
            .collect();
        users.extend(
            self.allocations()?
                .into_iter()
                .filter(|a| a.network == name)
                .map(|a| a.container),
        );
        if !users.is_empty() {
            return Err(StateError::NetworkInUse {
                network: name.to_owned(),
                containers: users.into_iter().collect(),
            });
        }
        let what = || format!("removing network {name}");
        // No allocation means no lease should exist; sweep anyway so nothing can outlive the
        // network.
        let stale: Vec<(String, u128)> = self
            .leases(name)?
            .into_iter()
            .map(|l| (subnet_key(&l.subnet), ip_to_u128(l.address)))
            .collect();
        {
            let mut leases = self.open_mut(LEASES)?;
            for (subnet, addr) in &stale {
                leases.remove((name, subnet.as_str(), *addr)).ctx(what)?;
            }
        }
        {
            let mut last = self.open_mut(LAST_IP)?;
            let keys: Vec<String> = {
                let mut keys = Vec::new();
                for entry in last.range((name, "")..).ctx(what)? {
                    let (k, _) = entry.ctx(what)?;
                    let (n, subnet) = k.value();
                    if n != name {
                        break;
                    }
                    keys.push(subnet.to_owned());
                }
                keys
            };
            for subnet in &keys {
                last.remove((name, subnet.as_str())).ctx(what)?;
            }
        }
        self.open_mut(NETWORKS)?.remove(name).ctx(what)?;
        Ok(Some(record))
    }

    /// Records a container, replacing the record of the same name.
    pub fn put_container(&mut self, container: &ContainerRecord) -> Result<(), StateError> {
        let invalid = |reason: String| StateError::InvalidRecord {
            what: format!("container {}", container.name),
            reason,
        };
        if container.name.is_empty() {
            return Err(invalid("the name is empty".to_owned()));
        }
        // Any id podman-like tools send (netavark takes short ids and names too); the front
        // doors hold it to netctl-types' rule, the store only to what keeps records sound.
        if container.id.is_empty() || container.id.contains(['/', '\0']) {
            return Err(invalid(format!(
                "ID {:?} is empty or contains `/` or NUL",
                container.id
            )));
        }
        let bytes = encode(container, || format!("container {}", container.name))?;
        self.open_mut(CONTAINERS)?
            .insert(container.name.as_str(), bytes.as_slice())
            .ctx(|| format!("recording container {}", container.name))?;
        Ok(())
    }

    /// Forgets a container and its helper-process record. Refuses while it is attached to a
    /// network or holds addresses: detach it first.
    pub fn remove_container(&mut self, name: &str) -> Result<Option<ContainerRecord>, StateError> {
        let Some(record) = self.container(name)? else {
            return Ok(None);
        };
        let mut networks: BTreeSet<String> = self
            .container_attachments(name)?
            .into_iter()
            .map(|a| a.network)
            .collect();
        // Keys only: no allocation is decoded, so removing each of many containers stays cheap.
        {
            let t = self.open_ro(ALLOCATIONS)?;
            let what = || format!("looking for addresses of container {name}");
            for entry in t.iter().ctx(what)? {
                let (k, _) = entry.ctx(what)?;
                let (network, container) = k.value();
                if container == name {
                    networks.insert(network.to_owned());
                }
            }
        }
        if !networks.is_empty() {
            return Err(StateError::ContainerAttached {
                container: name.to_owned(),
                networks: networks.into_iter().collect(),
            });
        }
        let what = || format!("removing container {name}");
        self.open_mut(HELPERS)?.remove(name).ctx(what)?;
        self.open_mut(CONTAINERS)?.remove(name).ctx(what)?;
        Ok(Some(record))
    }

    /// Gives `container` one address in every subnet of `network`: the requested static address
    /// where one lies in the subnet, the next free one otherwise. Returns the addresses with
    /// their subnet's prefix length, in the network's subnet order.
    ///
    /// The container need not be recorded (an allocation can come before the record in the
    /// same transaction), but the network must be.
    pub fn allocate(
        &mut self,
        network: &str,
        container: &str,
        request: &AllocRequest,
    ) -> Result<Vec<IpNet>, StateError> {
        let net = self
            .network(network)?
            .ok_or_else(|| StateError::NetworkNotFound {
                query: network.to_owned(),
            })?;
        let fail = |source: IpamError| StateError::Allocate {
            network: network.to_owned(),
            container: container.to_owned(),
            source,
        };
        if self.allocation(network, container)?.is_some() {
            return Err(fail(IpamError::AlreadyAllocated {
                network: network.to_owned(),
                container: container.to_owned(),
            }));
        }
        let ranges: Vec<SubnetRange> = net
            .subnets
            .iter()
            .map(|s| SubnetRange::of_network(&net, s))
            .collect();

        // Assign the static addresses to their subnets first: one per subnet, each inside one.
        let mut statics: Vec<Option<IpAddr>> = vec![None; ranges.len()];
        for &ip in &request.static_ips {
            let Some(i) = ranges.iter().position(|r| r.subnet().contains(&ip)) else {
                return Err(fail(IpamError::NotInSubnet {
                    ip,
                    network: network.to_owned(),
                }));
            };
            if let Some(first) = statics[i] {
                return Err(fail(IpamError::TwoInSubnet {
                    subnet: ranges[i].subnet(),
                    first,
                    second: ip,
                }));
            }
            statics[i] = Some(ip);
        }

        // Decide every address before writing any, so a failure leaves no partial allocation.
        let what =
            || format!("allocating addresses on network {network} for container {container}");
        let mut chosen: Vec<(String, u128, bool)> = Vec::with_capacity(ranges.len());
        {
            let leases = self.open_ro(LEASES)?;
            let last_ips = self.open_ro(LAST_IP)?;
            for (range, want) in ranges.iter().zip(&statics) {
                let key = subnet_key(&range.subnet());
                if let Some(ip) = *want {
                    let value = range.check_static(ip, network).map_err(fail)?;
                    if let Some(holder) = leases.get((network, key.as_str(), value)).ctx(what)? {
                        let holder = holder.value().to_owned();
                        let container_id = self.container(&holder)?.map(|c| c.id);
                        return Err(fail(IpamError::AddressInUse {
                            ip,
                            container: holder,
                            container_id,
                        }));
                    }
                    chosen.push((key, value, false));
                } else {
                    let last = last_ips
                        .get((network, key.as_str()))
                        .ctx(what)?
                        .map(|v| v.value());
                    let view = SubnetLeases {
                        table: &leases,
                        network,
                        subnet: &key,
                    };
                    let Some(value) = range.next_free(last, &view).ctx(what)? else {
                        return Err(fail(range.exhausted()));
                    };
                    chosen.push((key, value, true));
                }
            }
        }

        let addresses: Vec<IpNet> = ranges
            .iter()
            .zip(&chosen)
            .map(|(range, (_, value, _))| {
                IpNet::new(range.addr(*value), range.subnet().prefix_len())
                    .expect("the prefix length comes from a valid subnet")
            })
            .collect();
        {
            let mut leases = self.open_mut(LEASES)?;
            let mut last_ips = self.open_mut(LAST_IP)?;
            for (key, value, automatic) in &chosen {
                leases
                    .insert((network, key.as_str(), *value), container)
                    .ctx(what)?;
                // Static addresses do not move the pointer, as in podman.
                if *automatic {
                    last_ips.insert((network, key.as_str()), *value).ctx(what)?;
                }
            }
        }
        let bytes = encode(&addresses, what)?;
        self.open_mut(ALLOCATIONS)?
            .insert((network, container), bytes.as_slice())
            .ctx(what)?;
        Ok(addresses)
    }

    /// Releases every address `container` holds on `network` and returns them. Releasing what
    /// is not held is not an error (teardown is best effort and may run twice).
    pub fn release(&mut self, network: &str, container: &str) -> Result<Vec<IpNet>, StateError> {
        let Some(addresses) = self.allocation(network, container)? else {
            return Ok(Vec::new());
        };
        let what = || format!("releasing addresses of container {container} on network {network}");
        {
            let mut leases = self.open_mut(LEASES)?;
            for a in &addresses {
                let key = subnet_key(a);
                let lease_key = (network, key.as_str(), ip_to_u128(a.addr()));
                // Only remove a lease this container holds: never free another's address.
                let holder = leases
                    .get(lease_key)
                    .ctx(what)?
                    .map(|v| v.value().to_owned());
                if holder.as_deref() == Some(container) {
                    leases.remove(lease_key).ctx(what)?;
                }
            }
        }
        self.open_mut(ALLOCATIONS)?
            .remove((network, container))
            .ctx(what)?;
        Ok(addresses)
    }

    /// Attaches a recorded container to a recorded network: allocates its addresses, picks its
    /// interface name and MAC, and records the attachment, all in this transaction.
    pub fn attach(&mut self, request: &AttachRequest) -> Result<AttachmentRecord, StateError> {
        let (container, network) = (request.container.as_str(), request.network.as_str());
        if self.network(network)?.is_none() {
            return Err(StateError::NetworkNotFound {
                query: network.to_owned(),
            });
        }
        if self.container(container)?.is_none() {
            return Err(StateError::ContainerNotFound {
                query: container.to_owned(),
            });
        }
        if self.attachment(container, network)?.is_some() {
            return Err(StateError::AlreadyAttached {
                container: container.to_owned(),
                network: network.to_owned(),
            });
        }
        let existing = self.container_attachments(container)?;
        let interface = match &request.interface {
            Some(name) => {
                if let Some(other) = existing.iter().find(|a| &a.interface == name) {
                    return Err(StateError::InterfaceInUse {
                        container: container.to_owned(),
                        interface: name.clone(),
                        network: other.network.clone(),
                    });
                }
                name.clone()
            }
            // n existing interfaces leave one of eth0..=ethn free
            None => (0..=existing.len())
                .map(|n| format!("eth{n}"))
                .find(|name| !existing.iter().any(|a| &a.interface == name))
                .expect("one of n+1 names is free"),
        };
        let mac = request
            .mac
            .unwrap_or_else(|| MacAddr::random(&mut rand::rng()));
        // The last fallible step that is not a storage error: nothing is written before it.
        let addresses = self.allocate(
            network,
            container,
            &AllocRequest {
                static_ips: request.static_ips.clone(),
            },
        )?;
        let record = AttachmentRecord {
            container: container.to_owned(),
            network: network.to_owned(),
            interface,
            mac,
            aliases: request.aliases.clone(),
            addresses,
            metric: request.metric,
            host_interface: None,
        };
        self.write_attachment(&record)?;
        Ok(record)
    }

    /// Detaches a container from a network: releases its addresses and forgets the attachment.
    /// Returns the attachment that was recorded, if any.
    pub fn detach(
        &mut self,
        container: &str,
        network: &str,
    ) -> Result<Option<AttachmentRecord>, StateError> {
        let record = self.attachment(container, network)?;
        self.release(network, container)?;
        if record.is_some() {
            self.open_mut(ATTACHMENTS)?
                .remove((container, network))
                .ctx(|| format!("detaching container {container} from network {network}"))?;
        }
        Ok(record)
    }

    /// Records the declared name of an attachment's host veth end.
    pub fn set_host_interface(
        &mut self,
        container: &str,
        network: &str,
        name: Option<String>,
    ) -> Result<AttachmentRecord, StateError> {
        self.edit_attachment(container, network, |record| record.host_interface = name)
    }

    /// Replaces the aliases of an existing attachment; everything else stays.
    pub fn set_aliases(
        &mut self,
        container: &str,
        network: &str,
        aliases: Vec<String>,
    ) -> Result<AttachmentRecord, StateError> {
        self.edit_attachment(container, network, |record| record.aliases = aliases)
    }

    /// An existing attachment, changed by `edit` and written back.
    fn edit_attachment(
        &mut self,
        container: &str,
        network: &str,
        edit: impl FnOnce(&mut AttachmentRecord),
    ) -> Result<AttachmentRecord, StateError> {
        let mut record =
            self.attachment(container, network)?
                .ok_or_else(|| StateError::NotAttached {
                    container: container.to_owned(),
                    network: network.to_owned(),
                })?;
        edit(&mut record);
        self.write_attachment(&record)?;
        Ok(record)
    }

    fn write_attachment(&mut self, record: &AttachmentRecord) -> Result<(), StateError> {
        let what = || {
            format!(
                "recording the attachment of container {} to network {}",
                record.container, record.network
            )
        };
        let bytes = encode(record, what)?;
        self.open_mut(ATTACHMENTS)?
            .insert(
                (record.container.as_str(), record.network.as_str()),
                bytes.as_slice(),
            )
            .ctx(what)?;
        Ok(())
    }

    /// Records the helper process of a recorded container, replacing any earlier one.
    pub fn put_helper(&mut self, helper: &HelperRecord) -> Result<(), StateError> {
        if self.container(&helper.container)?.is_none() {
            return Err(StateError::ContainerNotFound {
                query: helper.container.clone(),
            });
        }
        let what = || format!("helper process of container {}", helper.container);
        let bytes = encode(helper, what)?;
        self.open_mut(HELPERS)?
            .insert(helper.container.as_str(), bytes.as_slice())
            .ctx(what)?;
        Ok(())
    }

    /// Records the aardvark-dns serving `server.dir`, replacing any earlier one.
    pub fn put_dns_server(&mut self, server: &DnsServerRecord) -> Result<(), StateError> {
        let key = server.dir.to_string_lossy().into_owned();
        let what = || format!("DNS server of {key}");
        let bytes = encode(server, what)?;
        self.open_mut(DNS_SERVERS)?
            .insert(key.as_str(), bytes.as_slice())
            .ctx(what)?;
        Ok(())
    }

    /// Forgets the aardvark-dns of config directory `dir`.
    pub fn remove_dns_server(&mut self, dir: &Path) -> Result<(), StateError> {
        let key = dir.to_string_lossy().into_owned();
        self.open_mut(DNS_SERVERS)?
            .remove(key.as_str())
            .ctx(|| format!("forgetting the DNS server of {key}"))?;
        Ok(())
    }

    /// Forgets a container's helper process, returning what was recorded.
    pub fn remove_helper(&mut self, container: &str) -> Result<Option<HelperRecord>, StateError> {
        let record = self.helper(container)?;
        if record.is_some() {
            self.open_mut(HELPERS)?
                .remove(container)
                .ctx(|| format!("forgetting the helper process of container {container}"))?;
        }
        Ok(record)
    }

    /// Records an applied desired-state file as the next generation, keeping the last
    /// [`GENERATIONS_KEPT`].
    pub fn record_generation(
        &mut self,
        content: &str,
        source: Option<&Path>,
    ) -> Result<Generation, StateError> {
        let number = self.latest_generation()?.map_or(1, |g| g.number + 1);
        let generation = Generation {
            number,
            source: source.map(Path::to_path_buf),
            content: content.to_owned(),
            sha256: sha256_hex(content.as_bytes()),
            applied_at: SystemTime::now(),
        };
        let what = || format!("recording generation {number}");
        let bytes = encode(&generation, what)?;
        let mut t = self.open_mut(GENERATIONS)?;
        t.insert(number, bytes.as_slice()).ctx(what)?;
        if number > GENERATIONS_KEPT {
            let oldest_kept = number - GENERATIONS_KEPT + 1;
            t.retain_in(..oldest_kept, |_, _| false).ctx(what)?;
        }
        Ok(generation)
    }
}

/// Lowercase hex SHA-256, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
