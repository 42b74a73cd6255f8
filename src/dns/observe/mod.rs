//! Observing DNS: which servers are authoritative for a zone ([`servers`]),
//! what each of them serves and whether that is what a step needs
//! ([`propagation`]), whether the answer validates as Secure ([`dnssec`],
//! with trust anchors from [`anchors`]), and how long caches may hold what
//! they saw ([`ttl`]). Nothing here writes to DNS; `live/` and the roll
//! engine stand on these observations.

pub mod anchors;
pub mod dnssec;
pub mod extended_error;
pub mod observation;
pub mod propagation;
pub mod resolver_probe;
pub mod servers;
pub mod ttl;
pub mod zone;
