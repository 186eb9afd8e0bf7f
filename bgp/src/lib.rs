//! FerroLB's BGP and BFD implementation, written from the RFCs, with a sans-IO
//! core. Not implemented yet; see the project's issues.
