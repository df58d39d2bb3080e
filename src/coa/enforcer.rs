//! The enforcer: follows the registry and kicks sessions that lost their access.
