//! poortwachter: network access control for a BYOD Wi-Fi network. Access points ask it over
//! RADIUS whether a personal device may join, and in which VLAN; ICT keeps the device registry.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::significant_drop_in_scrutinee)]

pub mod activity;
pub mod api;
pub mod bundle;
pub mod coa;
pub mod config;
pub mod directory;
pub mod eap;
pub mod import;
pub mod lang;
pub mod logging;
pub mod mac;
pub mod model;
pub mod occupancy;
pub mod pki;
pub mod policy;
pub mod posture;
pub mod radius;
pub mod registry;
pub mod secret;
pub mod server;
pub mod sync;
pub mod text;
pub mod web;
pub mod why;
