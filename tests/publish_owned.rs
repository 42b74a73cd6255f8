//! The shared publisher (`tlsa::dns::publication`) on real servers: the records MTA-STS, TLS-RPT
//! and a managed MX list own whole are published into the lab's signed zone through RFC 2136
//! with TSIG, confirmed on the authoritative server, validated Secure through the lab's
//! unbound with the zone's trust anchor, replaced (hand-made records at the same RRset go),
//! and removed — on BIND and on Knot.

use crate::support;
use support::Lab;
use support::records::{name, records_in, txt};

use support::publishing::LabPublishing;
use tlsa::dns::observe::dnssec::{Anchors, Validator, Verdict};
use tlsa::dns::publication::{Owned, Publication, PublishError};
use tlsa::dns::{Rdata, RrType, RrsetId};

fn run(lab: Lab) {
    let runtime = support::runtime();
    runtime.block_on(publish_confirm_replace_remove(&lab));
    drop(runtime);
    drop(lab);
}

#[test]
fn bind() {
    run(Lab::start());
}

#[test]
fn knot() {
    run(Lab::start_knot());
}

async fn publish_confirm_replace_remove(lab: &Lab) {
    let parts = LabPublishing::new(lab).await;
    let publication = parts.publication();
    let zone = parts.zone.clone();
    let ttl = lab.ttl();
    let sts = RrsetId::new(name(&lab.name("_mta-sts")), RrType::Txt);
    let rpt = RrsetId::new(name(&lab.name("_smtp._tls")), RrType::Txt);
    let mx = RrsetId::new(zone.clone(), RrType::Mx);
    // A record longer than one string, with blanks, quotes and semicolons.
    let long = format!(
        "v=TLSRPTv1; rua=mailto:tlsrpt@{};{}",
        lab.zone(),
        " \"x\";".repeat(60)
    );
    let mx_records = [
        Rdata::parse(RrType::Mx, &format!("10 mx1.{}", lab.zone())).unwrap(),
        Rdata::parse(RrType::Mx, &format!("20 mx2.{}", lab.zone())).unwrap(),
    ];

    // BIND refuses (REFUSED) an MX whose host in the zone has no address: the hosts first.
    lab.nsupdate_ok(&format!(
        "update add mx1.{z} {ttl} IN A 192.0.2.1\nupdate add mx2.{z} {ttl} IN A 192.0.2.2",
        z = lab.zone()
    ));
    // A hand-made STS record sits where tlsa's goes: a whole-RRset publication replaces it.
    lab.nsupdate_ok(&format!(
        "update add {} {ttl} IN TXT \"v=STSv1; id=handmade\"",
        sts.owner
    ));
    let wanted = [
        Owned::new(sts.clone(), [txt("v=STSv1; id=20261202a")], ttl),
        Owned::new(rpt.clone(), [txt(&long)], ttl),
        Owned::new(mx.clone(), mx_records.clone(), ttl),
    ];
    let confirmed = publication
        .publish(&wanted)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(confirmed.changed);
    assert_eq!(
        confirmed.longest_ttl_before(),
        ttl,
        "the hand-made record's TTL"
    );
    for v in &confirmed.validations {
        assert_eq!(v.verdict, Verdict::Secure, "{v}");
    }
    for owned in &wanted {
        let reply = lab.query_server(&owned.id.owner.to_string(), owned.id.rtype.mnemonic());
        assert_eq!(
            records_in(&reply, owned.id.rtype),
            owned.records,
            "{}",
            owned.id
        );
        assert!(
            reply.is_signed(owned.id.rtype.mnemonic()),
            "{} signed",
            owned.id
        );
    }
    let served = lab.query_server(&rpt.owner.to_string(), "TXT");
    let strings = served.rdata("TXT")[0].matches("\" \"").count() + 1;
    assert!(
        strings >= 2,
        "the long record went out as {strings} strings"
    );

    // Publishing the same again changes nothing; confirming it needs no change either.
    let again = publication.publish(&wanted).await.unwrap();
    assert!(!again.changed);

    // Removal is confirmed as absence on the server, and the denial validates.
    let gone = [Owned::absent(sts.clone()), Owned::absent(mx.clone())];
    let removed = publication
        .publish(&gone)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(removed.changed);
    assert!(
        lab.query_server(&sts.owner.to_string(), "TXT")
            .rdata("TXT")
            .is_empty()
    );
    assert!(lab.query_server(lab.zone(), "MX").rdata("MX").is_empty());
    assert_eq!(
        records_in(
            &lab.query_server(&rpt.owner.to_string(), "TXT"),
            RrType::Txt
        ),
        wanted[1].records,
        "what was not named stays"
    );

    // A validator anchored on a key the zone does not have: nothing is published.
    let wrong = lab.dir().join("wrong.key");
    std::fs::write(
        &wrong,
        format!(
            "{} 3600 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
            lab.zone()
        ),
    )
    .unwrap();
    let untrusted = Validator::anchored(lab.resolver_addr(), &Anchors::File(wrong))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = Publication {
        validator: &untrusted,
        ..publication
    }
    .publish(&[Owned::new(sts.clone(), [txt("v=STSv1; id=never")], ttl)])
    .await
    .unwrap_err();
    assert!(
        matches!(refused, PublishError::Insecure { .. }),
        "{refused}"
    );
    eprintln!("{refused}");
    assert!(
        lab.query_server(&sts.owner.to_string(), "TXT")
            .rdata("TXT")
            .is_empty()
    );
}
