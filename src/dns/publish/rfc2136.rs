//! The RFC 2136 back-end: RRsets of any type changed by DNS UPDATE, signed with
//! TSIG (RFC 8945), sent to the zone's primary server.
//!
//! Each [`ChangeSet`] goes out as **one** UPDATE message, so a change to
//! several owner names of a zone is atomic. Every RRset change carries a
//! prerequisite on the RRset as it was read — the exact records (RFC 2136
//! §2.4.2) or "does not exist" (§2.4.3) — so two machines managing the same
//! zone never overwrite each other: the loser gets NXRRSET/YXRRSET, which
//! becomes [`DnsError::Conflict`], and [`crate::dns::apply_edits`] re-reads and
//! re-plans.
//!
//! The message itself is built, and split when too large, by
//! [`super::update_message`].
//!
//! Requests are signed here ([`TsigKey::sign`]) and sent through an unsigned
//! hickory client, so that a rejected key comes back as the server's real
//! answer (NOTAUTH with TSIG error BADSIG, BADKEY or BADTIME) rather than as
//! hickory's misleading "truncated HMACs" protocol error.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::StreamExt;
use hickory_net::NetError;
use hickory_proto::op::{DnsResponse, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, RecordType};

use super::provider::{Applied, ChangeSet, Provider, read_rrsets};
use super::tsig::{RequestSignature, TsigKey};
use super::update_message::{MAX_UPDATE_BYTES, fqdn, is_truncated, split_to_fit, update_message};
use crate::dns::DnsError;
use crate::dns::query::rcode_name;
use crate::dns::query::{self, Ask, Transport};
use crate::dns::rdata;
use crate::dns::rrset::{RrType, Rrset, RrsetId};

/// Largest message sent over UDP (RFC 1035 §4.2.1; no EDNS on UPDATE).
const UDP_LIMIT: usize = 512;

/// How often the server is asked again while waiting for it to serve a
/// change (BIND's inline signing serves an update some ms after answering).
const POLL: Duration = Duration::from_millis(20);

/// RFC 2136 dynamic updates to one server.
#[derive(Debug, Clone)]
pub struct Rfc2136 {
    /// The zone's primary (or a server forwarding updates to it), also asked
    /// for the current RRsets.
    pub server: SocketAddr,
    /// The TSIG key; `None` sends unsigned updates (for servers that allow
    /// them by address).
    pub key: Option<TsigKey>,
    /// Bound on each exchange, and on waiting for the server to serve a
    /// change it accepted.
    pub timeout: Duration,
    /// The zone; `None` finds it by asking the server for the owner's SOA.
    pub zone: Option<Name>,
}

impl Rfc2136 {
    pub fn new(server: SocketAddr, key: Option<TsigKey>) -> Self {
        Rfc2136 {
            server,
            key,
            timeout: query::DEFAULT_TIMEOUT,
            zone: None,
        }
    }

    pub fn with_zone(mut self, zone: Name) -> Self {
        self.zone = Some(zone);
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// [`Provider::apply`] with the request signed at `unix_time` (seconds)
    /// instead of now: the clock seam for tests of BADTIME.
    ///
    /// A change set too large for one message (64 KiB) goes out as several
    /// UPDATEs, one after the other, each owner's RRset whole in one of them
    /// with its own prerequisite: what one owner serves always moves from
    /// one consistent RRset to the next, which is what DANE needs; a failure
    /// part way leaves earlier parts applied, and the caller's next reading
    /// of the zone starts from there.
    pub async fn apply_at(&self, set: &ChangeSet, unix_time: u64) -> Result<Applied, DnsError> {
        let mut applied = Applied::default();
        for part in split_to_fit(set, MAX_UPDATE_BYTES)? {
            // The last serial seen includes every part before it.
            let serial = self.apply_message(&part, unix_time).await?.serial;
            applied.serial = serial.or(applied.serial);
        }
        Ok(applied)
    }

    /// One UPDATE message for `set`.
    async fn apply_message(&self, set: &ChangeSet, unix_time: u64) -> Result<Applied, DnsError> {
        let question = format!("UPDATE of zone {}", set.zone);
        let mut message = update_message(set);
        let signature = self.sign(&mut message, unix_time)?;
        let response = self.send(message, &question).await?;
        self.judge(set, &question, response, signature).await
    }

    /// The SOA serial the server serves for `zone` now.
    pub async fn soa_serial(&self, zone: &Name) -> Result<u32, DnsError> {
        let zone = &fqdn(zone);
        let response = self.ask(zone, RecordType::SOA).await?;
        let question = format!("{zone} SOA");
        if let Some(error) = self.not_authoritative(&response, zone, &question) {
            return Err(error);
        }
        serial_in(&response, zone).ok_or_else(|| DnsError::Malformed {
            server: self.server,
            question,
            why: "no SOA record in the answer".into(),
        })
    }

    /// Checks, changing nothing, that the server takes this key for `zone`:
    /// a TSIG-signed SOA query (a server checks the signature of a query as
    /// of an UPDATE: BADKEY, BADSIG and BADTIME come back the same way) and
    /// the signed answer verified. Says what was verified.
    pub async fn check(&self, zone: &Name) -> Result<Vec<String>, DnsError> {
        let zone = fqdn(zone);
        let question = format!("{zone} SOA (signed, read-only)");
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(zone.clone(), RecordType::SOA));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = match &self.key {
            Some(key) => Some(
                key.sign(&mut message, now)
                    .map_err(|e| DnsError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let response = self.send(message, &question).await?;
        let tsig_error = response.signature().and_then(|t| t.data.error);
        if let (Some(error), Some(key)) = (tsig_error, &self.key) {
            return Err(DnsError::AuthFailed {
                server: self.server,
                key: key.name.clone(),
                detail: tsig_detail(error, &response),
            });
        }
        if let Some(error) = self.not_authoritative(&response, &zone, &question) {
            return Err(error);
        }
        if let (Some(mut signature), Some(key)) = (signature, &self.key) {
            signature.verify(response.as_buffer()).map_err(|why| {
                DnsError::ResponseNotVerified {
                    server: self.server,
                    zone: zone.clone(),
                    why: format!("key {}: {why}", key.name),
                }
            })?;
        }
        let serial = response.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) if r.name == zone => Some(soa.serial),
            _ => None,
        });
        let serial = serial.map_or(String::new(), |s| format!(", serial {s}"));
        Ok(vec![match &self.key {
            Some(key) => format!(
                "{} answers a query signed with key {} and signs its answer{serial}",
                self.server, key.name
            ),
            None => format!(
                "{} answers for the zone{serial} (no TSIG key configured: updates go unsigned)",
                self.server
            ),
        }])
    }

    /// Signs `message` with the key, if there is one.
    fn sign(
        &self,
        message: &mut Message,
        unix_time: u64,
    ) -> Result<Option<RequestSignature>, DnsError> {
        self.key
            .as_ref()
            .map(|key| {
                key.sign(message, unix_time)
                    .map_err(|e| DnsError::Config(e.to_string()))
            })
            .transpose()
    }

    /// The server's TSIG error (BADKEY, BADSIG, BADTIME) as an authentication failure.
    fn key_accepted(&self, response: &DnsResponse) -> Result<(), DnsError> {
        let tsig_error = response.signature().and_then(|t| t.data.error);
        match (tsig_error, &self.key) {
            (Some(error), Some(key)) => Err(DnsError::AuthFailed {
                server: self.server,
                key: key.name.clone(),
                detail: tsig_detail(error, response),
            }),
            _ => Ok(()),
        }
    }

    /// Verifies the server's signature on its answer to a signed request.
    fn verify_answer(
        &self,
        signature: Option<RequestSignature>,
        response: &DnsResponse,
        zone: &Name,
    ) -> Result<(), DnsError> {
        match (signature, &self.key) {
            (Some(mut signature), Some(key)) => {
                signature.verify(response.as_buffer()).map_err(|why| {
                    DnsError::ResponseNotVerified {
                        server: self.server,
                        zone: zone.clone(),
                        why: format!("key {}: {why}", key.name),
                    }
                })
            }
            _ => Ok(()),
        }
    }

    /// "key NAME" or "an unsigned request", for messages.
    fn key_phrase(&self) -> String {
        match &self.key {
            Some(key) => format!("key {}", key.name),
            None => "an unsigned request".into(),
        }
    }

    /// One question to the server, without recursion and without RRSIGs.
    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<DnsResponse, DnsError> {
        let ask = Ask {
            recursion: false,
            dnssec_ok: false,
            timeout: self.timeout,
        };
        query::ask(self.server, name, rtype, ask).await
    }

    /// Why `response` is not an authoritative answer (NOERROR or NXDOMAIN
    /// with AA set) for a name in `zone`; `None` if it is one.
    fn not_authoritative(
        &self,
        response: &DnsResponse,
        zone: &Name,
        question: &str,
    ) -> Option<DnsError> {
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain if response.authoritative => None,
            rcode @ (ResponseCode::NoError | ResponseCode::NXDomain) => {
                Some(DnsError::NotAuthoritative {
                    server: self.server,
                    zone: zone.clone(),
                    answered: format!("{} without the AA bit", rcode_name(rcode)),
                })
            }
            rcode @ (ResponseCode::Refused | ResponseCode::NotAuth) => {
                Some(DnsError::NotAuthoritative {
                    server: self.server,
                    zone: zone.clone(),
                    answered: rcode_name(rcode),
                })
            }
            other => Some(rcode_error(self.server, question, other, zone)),
        }
    }

    /// Sends a prepared (signed) UPDATE: over UDP when it fits in 512 bytes,
    /// else over TCP; over TCP again when the UDP answer is truncated.
    async fn send(&self, message: Message, question: &str) -> Result<DnsResponse, DnsError> {
        let bytes = message
            .to_vec()
            .map_err(|e| DnsError::Config(format!("cannot encode the {question}: {e}")))?;
        if is_truncated(&bytes) {
            return Err(DnsError::Config(format!(
                "internal: the {question} does not fit in one message; nothing was sent"
            )));
        }
        let size = bytes.len();
        let transport = if size > UDP_LIMIT {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let response = query::exchange(self.server, message.clone(), transport, self.timeout)
            .await
            .map_err(|e| self.net_error(question, e))?;
        if transport == Transport::Udp && response.truncation {
            return query::exchange(self.server, message, Transport::Tcp, self.timeout)
                .await
                .map_err(|e| self.net_error(question, e));
        }
        Ok(response)
    }

    fn net_error(&self, question: &str, error: NetError) -> DnsError {
        // Only a *signing* hickory client verifies answers and fails this way on
        // the server's unsigned BADSIG/BADKEY answer; ours does not sign, but
        // should it ever come back, it is still an authentication failure.
        if error.to_string().contains("truncated HMACs")
            && let Some(key) = &self.key
        {
            return DnsError::AuthFailed {
                server: self.server,
                key: key.name.clone(),
                detail: "the server rejected the signature (BADSIG or BADKEY)".into(),
            };
        }
        query::net_error(self.server, question, self.timeout, error)
    }

    /// Turns the server's answer into the outcome of the update.
    async fn judge(
        &self,
        set: &ChangeSet,
        question: &str,
        response: DnsResponse,
        signature: Option<RequestSignature>,
    ) -> Result<Applied, DnsError> {
        let rcode = response.response_code;
        self.key_accepted(&response)?;
        match rcode {
            ResponseCode::NoError | ResponseCode::NXRRSet | ResponseCode::YXRRSet => {
                self.verify_answer(signature, &response, &set.zone)?;
                if rcode == ResponseCode::NoError {
                    Ok(Applied {
                        serial: self.serial_after(set).await,
                    })
                } else {
                    let (owner, rtype) = self.conflicting_rrset(set).await;
                    Err(DnsError::Conflict {
                        server: self.server,
                        owner,
                        rtype,
                    })
                }
            }
            ResponseCode::Refused => Err(DnsError::UpdateRefused {
                server: self.server,
                zone: set.zone.clone(),
                key: self.key_phrase(),
                rcode: rcode_name(rcode),
            }),
            ResponseCode::NotAuth => {
                // RFC 2136 NOTAUTH: "not authoritative for the zone". Some
                // servers also answer it when their ACL denies the request:
                // an authoritative server saying it means "not allowed".
                if self.serves_zone(&set.zone).await {
                    Err(DnsError::UpdateRefused {
                        server: self.server,
                        zone: set.zone.clone(),
                        key: self.key_phrase(),
                        rcode: rcode_name(rcode),
                    })
                } else {
                    Err(DnsError::NotAuthoritative {
                        server: self.server,
                        zone: set.zone.clone(),
                        answered: rcode_name(rcode),
                    })
                }
            }
            other => Err(rcode_error(self.server, question, other, &set.zone)),
        }
    }

    /// Whether the server answers authoritatively for `zone`'s SOA.
    async fn serves_zone(&self, zone: &Name) -> bool {
        self.soa_serial(zone).await.is_ok()
    }

    /// After the server accepted the update: waits (bounded by the timeout)
    /// until it serves every changed RRset as desired — BIND's inline signing
    /// serves an update a few ms after answering — then reads the SOA serial,
    /// which therefore includes the change. `None` if the change was not seen
    /// in time (e.g. another writer changed the names right after us).
    async fn serial_after(&self, set: &ChangeSet) -> Option<u32> {
        // The update is done: a failing read here must not report it failed.
        let deadline = Instant::now() + self.timeout;
        loop {
            if self.serves_all(set).await {
                return self.soa_serial(&set.zone).await.ok();
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the server serves every changed RRset as desired.
    async fn serves_all(&self, set: &ChangeSet) -> bool {
        let reads = set
            .changes
            .iter()
            .map(|change| (change, self as &dyn Provider, &set.zone, change.id()));
        let mut reads = std::pin::pin!(read_rrsets(reads));
        while let Some((change, read)) = reads.next().await {
            let Ok(now) = read else {
                return false;
            };
            let ttl_ok = change.desired.is_empty() || now.ttl == Some(change.ttl);
            if now.records != change.desired || !ttl_ok {
                return false;
            }
        }
        true
    }

    /// After a failed prerequisite: the owner whose RRset is no longer what
    /// was read. Waits (bounded) until the server serves the other writer's
    /// change, so that the caller's re-read sees it; falls back to the first
    /// owner of the set.
    async fn conflicting_rrset(&self, set: &ChangeSet) -> (Name, RrType) {
        let deadline = Instant::now() + self.timeout;
        loop {
            for change in &set.changes {
                match self.read(&set.zone, &change.id()).await {
                    Ok(now) if now.records != change.expected => {
                        return (change.owner.clone(), change.rtype);
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return set
                    .changes
                    .first()
                    .map(|c| (c.owner.clone(), c.rtype))
                    .unwrap_or_else(|| (set.zone.clone(), RrType::Tlsa));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[async_trait]
impl Provider for Rfc2136 {
    fn describe(&self) -> String {
        match &self.key {
            Some(key) => format!("RFC 2136 at {} (key {})", self.server, key.name),
            None => format!("RFC 2136 at {} (unsigned)", self.server),
        }
    }

    async fn zone_of(&self, owner: &Name) -> Result<Name, DnsError> {
        if let Some(zone) = &self.zone {
            return if zone.zone_of(owner) {
                Ok(zone.clone())
            } else {
                Err(DnsError::Config(format!(
                    "{owner} is not in zone {zone}, the zone configured for {}",
                    self.describe()
                )))
            };
        }
        let response = self.ask(owner, RecordType::SOA).await?;
        let not_served = |how: String| {
            DnsError::Config(format!(
                "{} is not authoritative for any zone holding {owner} ({how}): point the RFC 2136 back-end at the primary server of that zone, or configure the zone",
                self.server
            ))
        };
        match response.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::Refused | ResponseCode::NotAuth => {
                return Err(not_served(format!(
                    "it answered {}",
                    rcode_name(response.response_code)
                )));
            }
            other => {
                return Err(rcode_error(
                    self.server,
                    &format!("{owner} SOA"),
                    other,
                    owner,
                ));
            }
        }
        if !response.authoritative {
            return Err(not_served(
                "its answer has no AA flag: a referral to a child zone, or a cached answer".into(),
            ));
        }
        // The SOA is the answer at the apex, else in the authority section
        // of the negative answer; it names the zone.
        response
            .answers
            .iter()
            .chain(response.authorities.iter())
            .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(owner))
            .map(|r| r.name.clone())
            .ok_or_else(|| not_served("its answer names no enclosing zone".into()))
    }

    async fn read(&self, zone: &Name, id: &RrsetId) -> Result<Rrset, DnsError> {
        let owner = &id.owner;
        let response = self.ask(owner, id.rtype.record_type()).await?;
        let question = id.to_string();
        if let Some(error) = self.not_authoritative(&response, zone, &question) {
            return Err(error);
        }
        let mut rrset = Rrset::empty(owner.clone(), id.rtype);
        let absolute = fqdn(owner);
        for record in response.answers.iter().filter(|r| r.name == absolute) {
            if let Some(data) = rdata::from_hickory(id.rtype, &record.data) {
                rrset.records.insert(data);
                rrset.ttl = Some(rrset.ttl.map_or(record.ttl, |t| t.min(record.ttl)));
            } else if let RData::CNAME(target) = &record.data {
                return Err(DnsError::Config(format!(
                    "{owner} is an alias (CNAME to {}): tlsa cannot publish {} records there; manage the target's records or remove the alias",
                    target.0, id.rtype
                )));
            }
        }
        Ok(rrset)
    }

    async fn apply(&self, set: &ChangeSet) -> Result<Applied, DnsError> {
        self.apply_at(set, unix_now()).await
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The SOA serial of `zone` in an answer.
fn serial_in(response: &DnsResponse, zone: &Name) -> Option<u32> {
    response.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) if r.name == *zone => Some(soa.serial),
        _ => None,
    })
}

/// What a TSIG error means, for [`DnsError::AuthFailed`].
fn tsig_detail(error: TsigError, response: &DnsResponse) -> String {
    match error {
        TsigError::BadSig => "BADSIG: wrong secret".into(),
        TsigError::BadKey => "BADKEY: the server does not know this key name (or algorithm)".into(),
        TsigError::BadTime => {
            // The server puts its time in the TSIG "other data" (RFC 8945 §5.2.3).
            let skew = response.signature().and_then(|t| {
                let other: [u8; 6] = t.data.other.as_slice().try_into().ok()?;
                let server = other.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
                Some(server as i64 - t.data.time as i64)
            });
            match skew {
                Some(skew) => format!(
                    "BADTIME: clock skew, the server's clock is {} s {} the request's signing time",
                    skew.unsigned_abs(),
                    if skew >= 0 { "ahead of" } else { "behind" }
                ),
                None => "BADTIME: clock skew".into(),
            }
        }
        TsigError::BadTrunc => "BADTRUNC: the server rejected the MAC length".into(),
        TsigError::Unknown(code) => format!("TSIG error {code}"),
    }
}

fn rcode_error(server: SocketAddr, question: &str, rcode: ResponseCode, zone: &Name) -> DnsError {
    let hint = match rcode {
        ResponseCode::ServFail => ": see the server's log".to_string(),
        ResponseCode::FormErr => {
            ": the server could not parse the message; see its log".to_string()
        }
        ResponseCode::NotImp => {
            ": the server does not implement this (dynamic update disabled?)".to_string()
        }
        ResponseCode::NotZone => {
            format!(": a name is outside zone {zone}; check the configured zone")
        }
        _ => String::new(),
    };
    DnsError::Rcode {
        server,
        question: question.to_string(),
        rcode: rcode_name(rcode),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::OpCode;
    use hickory_proto::rr::Record;

    use super::*;
    use crate::dns::publish::update_message::tests::change;
    use crate::dns::test_values::name;

    #[test]
    fn describe_names_server_and_key_but_never_the_secret() {
        let key = crate::dns::publish::tsig::TsigKey::parse_spec(
            "hmac-sha256:tlsa-key:c2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWE=",
            "test",
        )
        .unwrap();
        let server: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let p = Rfc2136::new(server, Some(key));
        assert_eq!(p.describe(), "RFC 2136 at 192.0.2.1:53 (key tlsa-key.)");
        for text in [p.describe(), format!("{p:?}"), format!("{p:#?}")] {
            assert!(!text.contains("c2VjcmV0"), "{text}");
            assert!(!text.contains("secret-a"), "{text}");
        }
        assert_eq!(
            Rfc2136::new(server, None).describe(),
            "RFC 2136 at 192.0.2.1:53 (unsigned)"
        );
    }

    // --------------------------------------------------------------------
    // Answers no real server gives on purpose, from a scripted fake server.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_proto::rr::rdata::SOA;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    type Script = dyn Fn(&Message, Transport) -> Option<Message> + Send + Sync;

    /// A loopback server (UDP and TCP on one port) answering with `script`
    /// (no answer on `None`).
    async fn fake_server(script: Arc<Script>) -> SocketAddr {
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let port = udp.local_addr().unwrap().port();
            if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let udp_script = script.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            while let Ok((len, peer)) = udp.recv_from(&mut buf).await {
                let Ok(request) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if let Some(answer) = udp_script(&request, Transport::Udp) {
                    let _ = udp.send_to(&answer.to_vec().unwrap(), peer).await;
                }
            }
        });
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let script = script.clone();
                tokio::spawn(async move {
                    while let Ok(len) = stream.read_u16().await {
                        let mut buf = vec![0u8; usize::from(len)];
                        if stream.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        let request = Message::from_vec(&buf).unwrap();
                        if let Some(answer) = script(&request, Transport::Tcp) {
                            let bytes = answer.to_vec().unwrap();
                            let _ = stream.write_u16(bytes.len() as u16).await;
                            let _ = stream.write_all(&bytes).await;
                        }
                    }
                });
            }
        });
        addr
    }

    fn answer(request: &Message, rcode: ResponseCode) -> Message {
        let mut answer = Message::response(request.metadata.id, request.metadata.op_code);
        answer.metadata.response_code = rcode;
        answer.add_queries(request.queries.clone());
        answer
    }

    /// An authoritative answer to queries: the SOA of `example.` (serial 7),
    /// no TLSA anywhere. `None` for anything else.
    fn authoritative(request: &Message) -> Option<Message> {
        if request.metadata.op_code != OpCode::Query {
            return None;
        }
        let mut reply = answer(request, ResponseCode::NoError);
        reply.metadata.authoritative = true;
        let soa = SOA::new(name("ns.example."), name("h.example."), 7, 60, 30, 600, 60);
        let record = Record::from_rdata(name("example."), 60, RData::SOA(soa));
        match request.queries[0].query_type() {
            RecordType::SOA if request.queries[0].name() == &name("example.") => {
                reply.add_answer(record);
            }
            _ => {
                reply.add_authority(record);
            }
        }
        Some(reply)
    }

    fn one_change() -> ChangeSet {
        ChangeSet {
            zone: name("example."),
            changes: vec![change("_25._tcp.a.example.", &[], &[1], 60)],
        }
    }

    fn test_key() -> TsigKey {
        TsigKey::parse_spec(
            "hmac-sha256:tlsa-key:c2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWEtc2VjcmV0LWE=",
            "test",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn an_unsigned_answer_to_a_signed_update_is_not_trusted() {
        let server = fake_server(Arc::new(|request: &Message, _| {
            authoritative(request).or_else(|| Some(answer(request, ResponseCode::NoError)))
        }))
        .await;
        let p = Rfc2136::new(server, Some(test_key()));
        let e = p.apply(&one_change()).await.unwrap_err();
        assert!(matches!(e, DnsError::ResponseNotVerified { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("response from {server} failed TSIG verification (key tlsa-key.: the answer is not signed)")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn notauth_from_a_server_without_the_zone_is_not_authoritative() {
        let server = fake_server(Arc::new(|request: &Message, _| {
            let rcode = match request.metadata.op_code {
                OpCode::Update => ResponseCode::NotAuth,
                _ => ResponseCode::Refused,
            };
            Some(answer(request, rcode))
        }))
        .await;
        let e = Rfc2136::new(server, Some(test_key()))
            .apply(&one_change())
            .await
            .unwrap_err();
        assert!(matches!(e, DnsError::NotAuthoritative { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn other_rcodes_name_the_server_and_the_update() {
        let server = fake_server(Arc::new(|request: &Message, _| {
            Some(answer(request, ResponseCode::ServFail))
        }))
        .await;
        let e = Rfc2136::new(server, None)
            .apply(&one_change())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{server} answered UPDATE of zone example. with SERVFAIL: see the server's log"
            )
        );
    }

    #[tokio::test]
    async fn silence_is_a_timeout_naming_the_server() {
        let server = fake_server(Arc::new(|_: &Message, _| None)).await;
        let p = Rfc2136::new(server, Some(test_key())).with_timeout(Duration::from_millis(300));
        let e = p.apply(&one_change()).await.unwrap_err();
        assert!(
            matches!(e, DnsError::Timeout { server: s, .. } if s == server),
            "{e:?}"
        );
        assert!(e.to_string().contains("UPDATE of zone example."), "{e}");
    }

    /// A truncated UDP answer makes the update go again over TCP; the serial
    /// is read from the server afterwards.
    #[tokio::test]
    async fn a_truncated_answer_is_retried_over_tcp() {
        let over_tcp = Arc::new(AtomicUsize::new(0));
        let seen = over_tcp.clone();
        let server = fake_server(Arc::new(move |request: &Message, transport| {
            if let Some(reply) = authoritative(request) {
                return Some(reply);
            }
            let mut reply = answer(request, ResponseCode::NoError);
            match transport {
                Transport::Udp => reply.metadata.truncation = true,
                Transport::Tcp => {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
            Some(reply)
        }))
        .await;
        // The fake never serves the record: the serial stays unknown.
        let p = Rfc2136::new(server, None).with_timeout(Duration::from_millis(300));
        let applied = p.apply(&one_change()).await.unwrap();
        assert_eq!(applied, Applied { serial: None });
        assert_eq!(over_tcp.load(Ordering::SeqCst), 1);
        // A deletion is seen at once (no TLSA anywhere): serial 7.
        let delete = ChangeSet {
            zone: name("example."),
            changes: vec![change("_25._tcp.a.example.", &[1], &[], 60)],
        };
        assert_eq!(p.apply(&delete).await.unwrap(), Applied { serial: Some(7) });
        assert_eq!(over_tcp.load(Ordering::SeqCst), 2);
    }
}
