//! Core's integration tests, one binary: the library against real
//! throwaway clusters.

mod checksum;
mod expand;
mod expand_retype;
mod freeze;
mod gates;
mod ramps;
