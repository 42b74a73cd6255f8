//! What `tlsa::dns::publication` needs to publish into a lab's signed zone: the RFC 2136
//! back-end with the lab's TSIG key, server discovery through the lab's resolver, and a
//! validator anchored on the zone's DS.

use std::time::Duration;

use hickory_proto::rr::Name;
use tlsa::clock::SystemClock;
use tlsa::dns::observe::dnssec::{Anchors, Validator};
use tlsa::dns::observe::propagation::{Discovery, Lookup};
use tlsa::dns::publication::Publication;
use tlsa::dns::publish::rfc2136::Rfc2136;
use tlsa::dns::publish::tsig::TsigKey;

use super::Lab;

pub struct LabPublishing {
    pub zone: Name,
    pub provider: Rfc2136,
    pub discovery: Discovery,
    pub validator: Validator,
}

impl LabPublishing {
    pub async fn new(lab: &Lab) -> Self {
        let zone = Name::from_ascii(lab.zone()).unwrap();
        let key = TsigKey::from_file(lab.tsig_key_file(), Some(lab.tsig_key_name())).unwrap();
        let discovery = Discovery::new(zone.clone(), Lookup::Resolver(lab.resolver_addr()))
            .port(lab.server_addr().port())
            .timeout(Duration::from_millis(700));
        let validator = Validator::anchored(
            lab.resolver_addr(),
            &Anchors::File(lab.ds_anchor_file().into()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        LabPublishing {
            zone,
            provider: Rfc2136::new(lab.server_addr(), Some(key)),
            discovery,
            validator,
        }
    }

    pub fn publication(&self) -> Publication<'_> {
        Publication {
            zone: &self.zone,
            provider: &self.provider,
            servers: &self.discovery,
            validator: &self.validator,
            clock: &SystemClock,
            timeout: Duration::from_secs(20),
            progress: &|line| eprintln!("{line}"),
        }
    }
}
