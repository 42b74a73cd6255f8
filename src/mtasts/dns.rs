//! The DNS steps of an MTA-STS plan ([`PublishSts`]) performed through
//! [`Publication`]: only into a zone that validates as Secure, by
//! compare-and-swap through the zone's back-end, confirmed on every
//! authoritative server.
//!
//! Both RRsets are read, edited and published whole:
//! - `_mta-sts.DOMAIN` TXT: every record that begins with `v=STSv1` is
//!   replaced by exactly one `v=STSv1; id=…`; other TXT records at that name
//!   (RFC 8461 §3.1 lets them exist, and senders ignore them) are kept.
//! - `DOMAIN` MX: a host added takes the **largest** preference already in
//!   the RRset (10 when there is none), so it shares the least-preferred
//!   rank and never becomes the only primary before it has carried mail; a
//!   host removed loses every record naming it. Preferences an operator
//!   set by hand are never changed.
//!
//! The change goes out as the records to add and to remove
//! ([`Publication::publish_edits`]), re-planned inside the compare-and-swap
//! loop: a record another host writes at either name between this module's
//! read and the swap is kept, not overwritten.

use async_trait::async_trait;
use hickory_proto::rr::Name;

use crate::dns::DnsError;
use crate::dns::publication::{Publication, PublishError, edit_from, replace_tagged_txt};
use crate::dns::rrset::{Mx, Rdata, RrType, Rrset, RrsetId, Txt};

/// How every STS record begins (RFC 8461 §3.1).
const VERSION: &str = "v=STSv1";

/// Preference of the first MX record of a domain that has none.
pub const FIRST_PREFERENCE: u16 = 10;

/// Why a DNS step of an MTA-STS plan failed.
#[derive(Debug, thiserror::Error)]
pub enum StsDnsError {
    #[error("{what} {text:?} is not a DNS name: {reason}")]
    Name {
        what: &'static str,
        text: String,
        reason: String,
    },
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The DNS changes of an MTA-STS plan, performed through the zone's
/// back-end with compare-and-swap, each confirmed on every authoritative
/// server before it returns.
#[async_trait]
pub trait PublishSts: Send + Sync {
    /// Makes `v=STSv1; id=ID` the only STS record at `_mta-sts.DOMAIN`.
    async fn publish_txt(&self, domain: &str, id: &str) -> Result<(), StsDnsError>;
    /// Removes every STS record at `_mta-sts.DOMAIN`.
    async fn remove_txt(&self, domain: &str) -> Result<(), StsDnsError>;
    /// Adds `host` to the MX RRset of `domain`.
    async fn add_mx(&self, domain: &str, host: &str) -> Result<(), StsDnsError>;
    /// Removes `host` from the MX RRset of `domain`.
    async fn remove_mx(&self, domain: &str, host: &str) -> Result<(), StsDnsError>;
}

/// [`PublishSts`] over one zone's [`Publication`].
pub struct StsDns<'a> {
    pub publication: Publication<'a>,
    /// TTL of an RRset created here; an existing RRset keeps its own.
    pub ttl: u32,
}

fn name(what: &'static str, text: &str) -> Result<Name, StsDnsError> {
    let mut name = Name::from_ascii(text).map_err(|e| StsDnsError::Name {
        what,
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// The TXT owner of `domain`'s policy id.
pub fn txt_id(domain: &str) -> Result<RrsetId, StsDnsError> {
    let owner = name(
        "mail domain",
        &format!("_mta-sts.{}", domain.trim_end_matches('.')),
    )?;
    Ok(RrsetId::new(owner, RrType::Txt))
}

/// The MX RRset of `domain`.
pub fn mx_id(domain: &str) -> Result<RrsetId, StsDnsError> {
    Ok(RrsetId::new(name("mail domain", domain)?, RrType::Mx))
}

/// `rrset` with its STS records replaced by `id`'s (none when `None`).
pub fn edit_txt(rrset: &Rrset, id: Option<&str>) -> Vec<Rdata> {
    let new = id.map(|id| Txt::from_text(&format!("{}; id={id}", VERSION)));
    replace_tagged_txt(rrset, VERSION, new)
}

/// `rrset` with `host` added at the preference policy above (unchanged
/// when it is there already).
pub fn edit_mx_add(rrset: &Rrset, host: &Name) -> Vec<Rdata> {
    let mut records: Vec<Rdata> = rrset.records.iter().cloned().collect();
    let mxs = || rrset.records.iter().filter_map(Rdata::as_mx);
    if !mxs().any(|m| &m.exchange == host) {
        let preference = mxs()
            .map(|m| m.preference)
            .max()
            .unwrap_or(FIRST_PREFERENCE);
        records.push(Rdata::Mx(Mx {
            preference,
            exchange: host.clone(),
        }));
    }
    records
}

/// `rrset` without any record naming `host`.
pub fn edit_mx_remove(rrset: &Rrset, host: &Name) -> Vec<Rdata> {
    let names = |r: &Rdata| r.as_mx().is_some_and(|m| &m.exchange == host);
    rrset
        .records
        .iter()
        .filter(|r| !names(r))
        .cloned()
        .collect()
}

impl StsDns<'_> {
    async fn read(&self, id: &RrsetId) -> Result<Rrset, StsDnsError> {
        let p = &self.publication;
        Ok(p.provider.read(p.zone, id).await?)
    }

    async fn put(&self, before: &Rrset, records: Vec<Rdata>) -> Result<(), StsDnsError> {
        let ttl = before.ttl.unwrap_or(self.ttl);
        let edit = edit_from(before, records, ttl);
        self.publication.publish_edits(&[edit]).await?;
        Ok(())
    }

    async fn edit_txt(&self, domain: &str, id: Option<&str>) -> Result<(), StsDnsError> {
        let before = self.read(&txt_id(domain)?).await?;
        self.put(&before, edit_txt(&before, id)).await
    }

    async fn edit_mx(
        &self,
        domain: &str,
        host: &str,
        edit: fn(&Rrset, &Name) -> Vec<Rdata>,
    ) -> Result<(), StsDnsError> {
        let host = name("MX host", host)?;
        let before = self.read(&mx_id(domain)?).await?;
        self.put(&before, edit(&before, &host)).await
    }
}

#[async_trait]
impl PublishSts for StsDns<'_> {
    async fn publish_txt(&self, domain: &str, id: &str) -> Result<(), StsDnsError> {
        self.edit_txt(domain, Some(id)).await
    }

    async fn remove_txt(&self, domain: &str) -> Result<(), StsDnsError> {
        self.edit_txt(domain, None).await
    }

    async fn add_mx(&self, domain: &str, host: &str) -> Result<(), StsDnsError> {
        self.edit_mx(domain, host, edit_mx_add).await
    }

    async fn remove_mx(&self, domain: &str, host: &str) -> Result<(), StsDnsError> {
        self.edit_mx(domain, host, edit_mx_remove).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(preference: u16, host: &str) -> Rdata {
        Rdata::Mx(Mx {
            preference,
            exchange: name("host", host).unwrap(),
        })
    }

    fn rrset(id: RrsetId, records: Vec<Rdata>) -> Rrset {
        Rrset {
            owner: id.owner,
            rtype: id.rtype,
            ttl: Some(60),
            records: records.into_iter().collect(),
        }
    }

    fn txt(text: &str) -> Rdata {
        Rdata::Txt(Txt::from_text(text))
    }

    #[test]
    fn the_sts_records_are_replaced_by_one_and_others_kept() {
        let id = txt_id("example.com").unwrap();
        assert_eq!(id.owner.to_ascii(), "_mta-sts.example.com.");
        let before = rrset(
            id,
            vec![
                txt("v=STSv1; id=old"),
                txt("v=STSv1; id=other"),
                txt("site-verification=abc"),
            ],
        );
        let after = edit_txt(&before, Some("new1"));
        assert_eq!(
            after.into_iter().collect::<std::collections::BTreeSet<_>>(),
            [txt("site-verification=abc"), txt("v=STSv1; id=new1")].into()
        );
        assert_eq!(edit_txt(&before, None), vec![txt("site-verification=abc")]);
    }

    #[test]
    fn a_host_added_takes_the_least_preferred_rank_and_removal_takes_all_its_records() {
        let id = mx_id("example.com").unwrap();
        let before = rrset(
            id.clone(),
            vec![mx(10, "a.example.com"), mx(20, "b.example.com")],
        );
        let new = name("host", "c.example.com").unwrap();
        let added = edit_mx_add(&before, &new);
        assert!(added.contains(&mx(20, "c.example.com")), "{added:?}");
        assert_eq!(added.len(), 3);
        let again = rrset(id.clone(), added.clone());
        assert_eq!(edit_mx_add(&again, &new).len(), 3, "added once");

        let first = edit_mx_add(&rrset(id.clone(), vec![]), &new);
        assert_eq!(first, vec![mx(FIRST_PREFERENCE, "c.example.com")]);

        let twice = rrset(id, vec![mx(10, "a.example.com"), mx(30, "A.example.com")]);
        let a = name("host", "a.example.com").unwrap();
        assert!(
            edit_mx_remove(&twice, &a).is_empty(),
            "names compare without case"
        );
    }

    #[test]
    fn a_host_that_is_no_name_is_refused_with_its_text() {
        let err = name("MX host", "a..b").unwrap_err();
        assert!(err.to_string().contains("MX host \"a..b\""), "{err}");
    }
}
