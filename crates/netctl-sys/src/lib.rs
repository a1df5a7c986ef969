//! The only door to the kernel: netlink, network namespaces, sysctls, nftables, processes.
