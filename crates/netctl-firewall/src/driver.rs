//! Firewall drivers: where batches meet the kernel.
//!
//! [`NftablesDriver`] hands each batch to an [`NftRunner`] (the binary wires that to netctl-sys,
//! the only crate that runs `nft`); [`NoneDriver`] does nothing, for hosts that manage their own
//! firewall.
//!
//! Repair protocol: the fast paths (network and container changes) only add and delete set and
//! map elements. When one fails, the driver applies [`presence_probe`], which changes nothing
//! and fails only when the table's sets are gone (`nft flush ruleset`, an nftables.service
//! restart); it then reports [`FirewallError::TableMissing`], and the caller rebuilds the
//! table from its recorded state ([`FirewallDriver::apply_change`] does exactly that).

use std::fmt;

use netctl_types::nft::ElementBatch;
use netctl_types::short_id;
use nftables::schema::Nftables;
use thiserror::Error;

use crate::batch::{self, presence_probe, to_json};
use crate::model::{FirewallState, FwContainer, FwNetwork};

/// Applies one nft JSON document (`nft -j -f -`) as one transaction.
pub trait NftRunner {
    type Error: std::error::Error + Send + Sync + 'static;

    fn apply(&self, json: &str) -> Result<(), Self::Error>;

    /// Applies a batch of element changes as one transaction. By default as its `nft -j`
    /// document; a runner that can send the elements to the kernel directly (netlink, without
    /// forking `nft`) does so.
    fn apply_elements(&self, batch: &ElementBatch) -> Result<(), Self::Error> {
        self.apply(&batch.json)
    }
}

/// The cause of a failed batch, as the runner reported it.
pub type RunnerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the firewall was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    FullRebuild,
    RemoveAll,
    AddNetwork { network: String },
    RemoveNetwork { network: String },
    AddContainer { container: String, network: String },
    RemoveContainer { container: String, network: String },
}

impl Operation {
    fn add_network(network: &FwNetwork) -> Self {
        Operation::AddNetwork {
            network: network.name.clone(),
        }
    }

    fn remove_network(network: &FwNetwork) -> Self {
        Operation::RemoveNetwork {
            network: network.name.clone(),
        }
    }

    fn add_container(container: &FwContainer) -> Self {
        Operation::AddContainer {
            container: container.id.clone(),
            network: container.network.clone(),
        }
    }

    fn remove_container(container: &FwContainer) -> Self {
        Operation::RemoveContainer {
            container: container.id.clone(),
            network: container.network.clone(),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::FullRebuild => f.write_str("rebuilding nftables table `inet netctl`"),
            Operation::RemoveAll => f.write_str("removing nftables table `inet netctl`"),
            Operation::AddNetwork { network } => {
                write!(f, "adding network `{network}` to the firewall")
            }
            Operation::RemoveNetwork { network } => {
                write!(f, "removing network `{network}` from the firewall")
            }
            Operation::AddContainer { container, network } => write!(
                f,
                "publishing ports of container {} on network `{network}`",
                short_id(container)
            ),
            Operation::RemoveContainer { container, network } => write!(
                f,
                "removing published ports of container {} on network `{network}`",
                short_id(container)
            ),
        }
    }
}

/// A firewall change that did not happen.
#[derive(Debug, Error)]
pub enum FirewallError {
    /// The table or one of its sets is gone; rebuild from recorded state.
    #[error(
        "{op}: nftables table `inet netctl` or one of its sets is missing \
         (was the ruleset flushed?); it must be rebuilt from the recorded state"
    )]
    TableMissing {
        op: Operation,
        #[source]
        source: RunnerError,
    },
    /// nft refused the batch while the table was in place (a host port already forwarded
    /// elsewhere, say, or nft itself failing).
    #[error("{op}: nftables rejected the batch")]
    Rejected {
        op: Operation,
        #[source]
        source: RunnerError,
    },
}

impl FirewallError {
    /// Whether a full rebuild from recorded state is the fix.
    pub fn is_table_missing(&self) -> bool {
        matches!(self, FirewallError::TableMissing { .. })
    }

    /// What was being done.
    pub fn operation(&self) -> &Operation {
        match self {
            FirewallError::TableMissing { op, .. } | FirewallError::Rejected { op, .. } => op,
        }
    }
}

/// One incremental change, for [`FirewallDriver::apply_change`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    AddNetwork(&'a FwNetwork),
    RemoveNetwork(&'a FwNetwork),
    AddContainer(&'a FwContainer),
    RemoveContainer(&'a FwContainer),
}

/// How [`FirewallDriver::apply_change`] got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The element batch applied.
    Incremental,
    /// The table was missing and was rebuilt from the given state.
    Rebuilt,
}

/// What netctl asks of a firewall.
pub trait FirewallDriver {
    /// The driver's name as in `--firewall-driver`.
    fn name(&self) -> &'static str;

    /// Replaces the table with one built from `state` (reload and repair).
    fn full_rebuild(&self, state: &FirewallState) -> Result<(), FirewallError>;

    /// Removes the table, if there is one.
    fn remove_all(&self) -> Result<(), FirewallError>;

    fn add_network(&self, network: &FwNetwork) -> Result<(), FirewallError>;

    fn remove_network(&self, network: &FwNetwork) -> Result<(), FirewallError>;

    fn add_container(&self, container: &FwContainer) -> Result<(), FirewallError>;

    fn remove_container(&self, container: &FwContainer) -> Result<(), FirewallError>;

    /// Applies one change through the fast path; if the table turns out to be missing, rebuilds
    /// it from `state_after` (the recorded state with the change already in it).
    fn apply_change(
        &self,
        change: Change<'_>,
        state_after: &FirewallState,
    ) -> Result<Applied, FirewallError> {
        let fast = match change {
            Change::AddNetwork(network) => self.add_network(network),
            Change::RemoveNetwork(network) => self.remove_network(network),
            Change::AddContainer(container) => self.add_container(container),
            Change::RemoveContainer(container) => self.remove_container(container),
        };
        match fast {
            Ok(()) => Ok(Applied::Incremental),
            Err(err) if err.is_table_missing() => {
                self.full_rebuild(state_after)?;
                Ok(Applied::Rebuilt)
            }
            Err(err) => Err(err),
        }
    }
}

/// The `nftables` driver: everything in `table inet netctl`.
#[derive(Debug)]
pub struct NftablesDriver<R> {
    runner: R,
}

impl<R: NftRunner> NftablesDriver<R> {
    pub fn new(runner: R) -> Self {
        NftablesDriver { runner }
    }

    /// The runner batches go through.
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Whether the table and all its sets and maps are there (one small batch that changes
    /// nothing).
    pub fn table_present(&self) -> bool {
        self.runner.apply(&to_json(&presence_probe())).is_ok()
    }

    fn apply(&self, op: Operation, batch: &Nftables<'_>) -> Result<(), FirewallError> {
        self.runner
            .apply(&to_json(batch))
            .map_err(|source| FirewallError::Rejected {
                op,
                source: Box::new(source),
            })
    }

    /// An element batch in nf_tables' bytes, through the runner's direct path; on failure the
    /// probe decides whether the table is missing.
    fn apply_element_batch(
        &self,
        op: Operation,
        batch: &ElementBatch,
    ) -> Result<(), FirewallError> {
        self.runner
            .apply_elements(batch)
            .map_err(|source| self.refused(op, source))
    }

    /// An element batch: on failure, the probe decides whether the table is missing.
    fn apply_elements(&self, op: Operation, batch: &Nftables<'_>) -> Result<(), FirewallError> {
        if batch::is_empty(batch) {
            return Ok(());
        }
        self.runner
            .apply(&to_json(batch))
            .map_err(|source| self.refused(op, source))
    }

    /// A failed element batch, told apart by the probe: the table is missing, or the batch
    /// itself was refused.
    fn refused(&self, op: Operation, source: R::Error) -> FirewallError {
        let source = Box::new(source);
        if self.table_present() {
            FirewallError::Rejected { op, source }
        } else {
            FirewallError::TableMissing { op, source }
        }
    }
}

impl<R: NftRunner> FirewallDriver for NftablesDriver<R> {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn full_rebuild(&self, state: &FirewallState) -> Result<(), FirewallError> {
        self.apply(Operation::FullRebuild, &batch::full_rebuild(state))
    }

    fn remove_all(&self) -> Result<(), FirewallError> {
        self.apply(Operation::RemoveAll, &batch::delete_table())
    }

    fn add_network(&self, network: &FwNetwork) -> Result<(), FirewallError> {
        self.apply_elements(
            Operation::add_network(network),
            &batch::add_network(network),
        )
    }

    fn remove_network(&self, network: &FwNetwork) -> Result<(), FirewallError> {
        self.apply_elements(
            Operation::remove_network(network),
            &batch::remove_network(network),
        )
    }

    fn add_container(&self, container: &FwContainer) -> Result<(), FirewallError> {
        match batch::container_elements(container, false) {
            Some(elements) => {
                self.apply_element_batch(Operation::add_container(container), &elements)
            }
            None => self.apply_elements(
                Operation::add_container(container),
                &batch::add_container(container),
            ),
        }
    }

    fn remove_container(&self, container: &FwContainer) -> Result<(), FirewallError> {
        match batch::container_elements(container, true) {
            Some(elements) => {
                self.apply_element_batch(Operation::remove_container(container), &elements)
            }
            None => self.apply_elements(
                Operation::remove_container(container),
                &batch::remove_container(container),
            ),
        }
    }
}

/// The `none` driver: netctl leaves the firewall to the host.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneDriver;

impl FirewallDriver for NoneDriver {
    fn name(&self) -> &'static str {
        "none"
    }

    fn full_rebuild(&self, _state: &FirewallState) -> Result<(), FirewallError> {
        Ok(())
    }

    fn remove_all(&self) -> Result<(), FirewallError> {
        Ok(())
    }

    fn add_network(&self, _network: &FwNetwork) -> Result<(), FirewallError> {
        Ok(())
    }

    fn remove_network(&self, _network: &FwNetwork) -> Result<(), FirewallError> {
        Ok(())
    }

    fn add_container(&self, _container: &FwContainer) -> Result<(), FirewallError> {
        Ok(())
    }

    fn remove_container(&self, _container: &FwContainer) -> Result<(), FirewallError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{FwPort, Isolate, Protocol};

    #[derive(Debug, Error)]
    #[error("nft said no")]
    struct Refused;

    /// A recording fake: answers each call with the next scripted result (success when the
    /// script runs out) and records every document it was given.
    #[derive(Debug, Default)]
    struct Fake {
        script: RefCell<VecDeque<bool>>,
        applied: RefCell<Vec<String>>,
    }

    impl Fake {
        fn failing(results: &[bool]) -> Self {
            Fake {
                script: RefCell::new(results.iter().copied().collect()),
                applied: RefCell::default(),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.applied.borrow().clone()
        }
    }

    impl NftRunner for Fake {
        type Error = Refused;

        fn apply(&self, json: &str) -> Result<(), Refused> {
            self.applied.borrow_mut().push(json.to_owned());
            if self.script.borrow_mut().pop_front().unwrap_or(true) {
                Ok(())
            } else {
                Err(Refused)
            }
        }
    }

    fn network() -> FwNetwork {
        FwNetwork {
            name: "web".into(),
            bridge: "nc-web".into(),
            subnets: vec!["10.89.0.0/24".parse().unwrap()],
            internal: false,
            isolate: Isolate::Disabled,
            outbound: crate::model::Outbound::default(),
            dns: Vec::new(),
        }
    }

    fn container() -> FwContainer {
        FwContainer {
            id: "6ce776ea58b5aaaabbbbccccddddeeeeffff0000111122223333444455556666".into(),
            network: "web".into(),
            ipv4: Some(Ipv4Addr::new(10, 89, 0, 2)),
            ipv6: None,
            ports: vec![FwPort::new(Protocol::Tcp, 8080, 80)],
        }
    }

    fn state() -> FirewallState {
        FirewallState {
            networks: vec![network()],
            containers: vec![container()],
        }
    }

    #[test]
    fn fast_path_is_one_batch() {
        let driver = NftablesDriver::new(Fake::default());
        driver.add_container(&container()).unwrap();
        assert_eq!(
            driver.runner().calls(),
            [to_json(&batch::add_container(&container()))]
        );
    }

    #[test]
    fn failure_with_the_table_gone_is_table_missing() {
        // The batch fails, then the probe fails too.
        let driver = NftablesDriver::new(Fake::failing(&[false, false]));
        let err = driver.add_container(&container()).unwrap_err();
        assert!(err.is_table_missing(), "{err}");
        assert_eq!(driver.runner().calls()[1], to_json(&presence_probe()));
        insta::assert_snapshot!(
            err.to_string(),
            @"publishing ports of container 6ce776ea58b5 on network `web`: nftables table `inet netctl` or one of its sets is missing (was the ruleset flushed?); it must be rebuilt from the recorded state"
        );
    }

    #[test]
    fn failure_with_the_table_present_is_rejected() {
        // The batch fails, the probe succeeds.
        let driver = NftablesDriver::new(Fake::failing(&[false, true]));
        let err = driver.remove_network(&network()).unwrap_err();
        assert!(!err.is_table_missing());
        assert_eq!(
            err.operation(),
            &Operation::RemoveNetwork {
                network: "web".into()
            }
        );
        insta::assert_snapshot!(err.to_string(), @"removing network `web` from the firewall: nftables rejected the batch");
        let source = std::error::Error::source(&err).expect("a cause");
        assert_eq!(source.to_string(), "nft said no");
    }

    #[test]
    fn rebuild_failure_is_not_probed() {
        let driver = NftablesDriver::new(Fake::failing(&[false]));
        let err = driver.full_rebuild(&state()).unwrap_err();
        assert!(matches!(
            err,
            FirewallError::Rejected {
                op: Operation::FullRebuild,
                ..
            }
        ));
        assert_eq!(driver.runner().calls().len(), 1);
    }

    #[test]
    fn apply_change_rebuilds_a_missing_table() {
        let driver = NftablesDriver::new(Fake::failing(&[false, false, true]));
        let applied = driver
            .apply_change(Change::AddContainer(&container()), &state())
            .unwrap();
        assert_eq!(applied, Applied::Rebuilt);
        assert_eq!(
            driver.runner().calls(),
            [
                to_json(&batch::add_container(&container())),
                to_json(&presence_probe()),
                to_json(&batch::full_rebuild(&state())),
            ]
        );
    }

    #[test]
    fn apply_change_passes_other_errors_through() {
        let driver = NftablesDriver::new(Fake::failing(&[false, true]));
        let err = driver
            .apply_change(Change::AddNetwork(&network()), &state())
            .unwrap_err();
        assert!(!err.is_table_missing());
        assert_eq!(driver.runner().calls().len(), 2);

        let driver = NftablesDriver::new(Fake::default());
        let applied = driver
            .apply_change(Change::RemoveContainer(&container()), &state())
            .unwrap();
        assert_eq!(applied, Applied::Incremental);
    }

    #[test]
    fn empty_batches_are_not_applied() {
        let driver = NftablesDriver::new(Fake::failing(&[false]));
        let quiet = FwContainer {
            ports: Vec::new(),
            ..container()
        };
        driver.add_container(&quiet).unwrap();
        driver.remove_container(&quiet).unwrap();
        assert!(driver.runner().calls().is_empty());
    }

    #[test]
    fn none_driver_does_nothing() {
        let driver = NoneDriver;
        assert_eq!(driver.name(), "none");
        driver.full_rebuild(&state()).unwrap();
        driver.add_network(&network()).unwrap();
        driver.add_container(&container()).unwrap();
        driver.remove_container(&container()).unwrap();
        driver.remove_network(&network()).unwrap();
        driver.remove_all().unwrap();
        assert_eq!(
            driver
                .apply_change(Change::AddContainer(&container()), &state())
                .unwrap(),
            Applied::Incremental
        );
    }
}
