//! [`StsScene`]: a mail domain with MTA-STS and DANE on real servers — the lab's signed
//! zone, nginx serving the policy over HTTPS from two addresses, and Postfix as the MX — for
//! the MTA-STS tests and benchmark.

use std::path::PathBuf;
use std::time::Duration;

use tlsa::mtasts::policy::{Mode, Policy};

use super::lab::Lab;
use super::nginx::{Nginx, Serve, Site};
use super::postfix::{Postfix, PostfixOptions, TestCa, TlsIdentity};
use super::static_server::random_loopback_v4;
use super::wait::poll_until;

const DNS_TIMEOUT: Duration = Duration::from_secs(20);

/// A mail domain with DANE and MTA-STS on real servers (see [`StsScene::start`]).
pub struct StsScene {
    // Field order is drop order: servers stop before the lab's directory goes.
    pub nginx: Nginx,
    pub postfix: Postfix,
    pub lab: Lab,
    /// The mail domain (the lab's zone, no trailing dot).
    pub zone: String,
    pub ca: TestCa,
    /// The CA's certificate, for `--ca-file` / `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    pub policy: Policy,
}

/// The policy of the scene's domain: `*.ZONE` matches its MX `mail.ZONE`.
fn policy_for(zone: &str, mode: Mode) -> Policy {
    Policy::new(mode, 86_400, &[format!("*.{zone}")]).unwrap()
}

impl StsScene {
    /// A lab zone with `_mta-sts` (as two TXT strings, beside an SPF record), two A records
    /// for `mta-sts.ZONE` (two nginx sites on loopback addresses of their own, serving the
    /// policy with a certificate from the scene's CA, on `nginx_port` or a free port), an MX
    /// `mail.ZONE` on a Postfix presenting `mx_identity` with its `3 1 1` TLSA record, and a
    /// TLS-RPT record — each validated by the lab's unbound before this returns.
    pub fn start(
        mode: Mode,
        mx_identity: impl FnOnce(&TestCa, &str) -> TlsIdentity,
        nginx_port: Option<u16>,
    ) -> StsScene {
        let lab = Lab::start();
        let zone = lab.zone().trim_end_matches('.').to_string();
        let ca = TestCa::new("Lab Test CA");
        let ca_file = lab.dir().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let policy = policy_for(&zone, mode);
        let host = format!("mta-sts.{zone}");
        let good = ca.issue(&[&host], 90);
        let sites: Vec<Site> = (0..2)
            .map(|_| Site {
                ip: random_loopback_v4(),
                identity: good.clone(),
                serve: Serve::Policy(policy.canonical()),
            })
            .collect();
        let nginx = match nginx_port {
            Some(port) => Nginx::start_on(&host, &sites, port),
            None => Nginx::start(&host, &sites),
        };
        let mail = format!("mail.{zone}");
        let identity = mx_identity(&ca, &mail);
        let postfix = Postfix::start(PostfixOptions {
            tls: Some(identity.clone()),
            ..PostfixOptions::default()
        });
        let id = policy.id();
        let (first, rest) = id.split_at(10);
        lab.nsupdate_ok(&format!(
            "update add {host}. 2 IN A {}\n\
         update add {host}. 2 IN A {}\n\
         update add _mta-sts.{zone}. 2 IN TXT \"v=STSv1; id={first}\" \"{rest}\"\n\
         update add _mta-sts.{zone}. 2 IN TXT \"v=spf1 -all\"\n\
         update add {zone}. 2 IN MX 10 {mail}.\n\
         update add {mail}. 2 IN A 127.0.0.1\n\
         update add _{}._tcp.{mail}. 2 IN TLSA 3 1 1 {}\n\
         update add _smtp._tls.{zone}. 2 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@{zone}\"",
            sites[0].ip,
            sites[1].ip,
            postfix.port(),
            identity.spki_sha256()
        ));
        for (name, rtype) in [
            (format!("{host}."), "A"),
            (format!("_mta-sts.{zone}."), "TXT"),
            (format!("{zone}."), "MX"),
            (format!("{mail}."), "A"),
            (format!("_{}._tcp.{mail}.", postfix.port()), "TLSA"),
            (format!("_smtp._tls.{zone}."), "TXT"),
        ] {
            wait_validated(&lab, &name, rtype);
        }
        StsScene {
            lab,
            zone,
            ca,
            ca_file,
            nginx,
            postfix,
            policy,
        }
    }
}

fn wait_validated(lab: &Lab, name: &str, rtype: &str) {
    poll_until(&format!("{name} {rtype} validated"), DNS_TIMEOUT, || {
        let reply = lab.query_resolver(name, rtype);
        (reply.is_noerror() && reply.has_flag("ad") && !reply.rdata(rtype).is_empty()).then_some(())
    });
}
