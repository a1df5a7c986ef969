//! Bridge backend: bridge, veth, addresses, routes, sysctls, firewall.
