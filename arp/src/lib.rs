//! FerroLB's layer-2 announcer (ARP and NDP), with a sans-IO core.
//! Not implemented yet; see the project's issues.
