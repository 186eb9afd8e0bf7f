//! FerroLB speaker library: desired announcements, layer-2 election and
//! membership. Not implemented yet; see the project's issues.
