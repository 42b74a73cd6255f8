//! One order: the certificate for a key tlsa already holds (the set's live
//! or pre-published next key: the CSR is signed with it, so the CA's
//! certificate carries exactly that SPKI), validated by DNS-01 or HTTP-01.
//! Challenge responses are removed after success and after every failure;
//! leftovers of a killed run are removed before a new order starts.

use std::collections::BTreeMap;

use hickory_proto::rr::Name;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::AcmeError;
use super::dns01::{Challenges, challenge_owner};
use super::http01::{Http01, Serving};

/// How the CA's challenges are answered.
pub enum Responder<'a> {
    /// TXT records at `_acme-challenge.HOST` through the zone's back-end.
    Dns01(Challenges<'a>),
    /// The key authorization over HTTP, from a webroot or a listener.
    Http01(Http01),
}

/// One pending authorization's challenge, as the responder needs it.
struct Pending {
    host: String,
    token: String,
    key_authorization: String,
    dns_value: String,
}

impl Responder<'_> {
    fn kind(&self) -> ChallengeType {
        match self {
            Responder::Dns01(_) => ChallengeType::Dns01,
            Responder::Http01(_) => ChallengeType::Http01,
        }
    }

    /// What to check when the CA could not validate.
    fn hint(&self) -> String {
        match self {
            Responder::Dns01(_) => {
                "check that its resolver reaches the zone's authoritative servers".into()
            }
            Responder::Http01(Http01::Webroot(dir)) => format!(
                "check that http://NAME/{}/ is served from {} on port 80 of every address of the name",
                super::http01::WELL_KNOWN,
                dir.display()
            ),
            Responder::Http01(Http01::Standalone(addr)) => {
                format!("check that port 80 of every address of the name reaches {addr}")
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Responder::Dns01(_) => "DNS-01",
            Responder::Http01(_) => "HTTP-01",
        }
    }

    /// Removes every response of this account for `names`: before an
    /// order (what a killed run left) and after it.
    async fn clear(&self, account: &Account, names: &[String]) -> Result<(), AcmeError> {
        match self {
            Responder::Dns01(challenges) => {
                let owners = names
                    .iter()
                    .map(|n| challenge_owner(n))
                    .collect::<Result<Vec<Name>, _>>()?;
                challenges.clear(&owners).await
            }
            Responder::Http01(http) => http.clear(account.key_thumbprint()),
        }
    }

    /// Puts every response in place; for DNS-01, confirmed on every
    /// authoritative server. A listener serves until the value is dropped.
    async fn present(&self, pending: &[Pending]) -> Result<Option<Serving>, AcmeError> {
        match self {
            Responder::Dns01(challenges) => {
                let mut values: BTreeMap<Name, Vec<String>> = BTreeMap::new();
                for p in pending {
                    values
                        .entry(challenge_owner(&p.host)?)
                        .or_default()
                        .push(p.dns_value.clone());
                }
                challenges.publish(&values).await.map(|()| None)
            }
            Responder::Http01(http) => {
                let responses = pending
                    .iter()
                    .map(|p| (p.token.clone(), p.key_authorization.clone()))
                    .collect();
                http.serve(&responses).await.map(Some)
            }
        }
    }
}

/// What an order produced.
#[derive(Debug, Clone)]
pub struct Obtained {
    /// The certificate and its chain, PEM, leaf first.
    pub chain_pem: String,
    /// The order's URL at the CA (for logs and `status`).
    pub order_url: String,
}

/// Obtains a certificate for `names` (host names; a final dot is dropped,
/// as ACME identifiers have none) for the key in `key_pem` (PKCS#8 PEM).
pub async fn obtain(
    account: &Account,
    names: &[String],
    key_pem: &str,
    responder: &Responder<'_>,
    retry: &RetryPolicy,
) -> Result<Obtained, AcmeError> {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let names = names.as_slice();
    responder.clear(account, names).await?;
    let result = order(account, names, key_pem, responder, retry).await;
    let cleared = responder.clear(account, names).await;
    let obtained = result?;
    cleared?;
    Ok(obtained)
}

async fn order(
    account: &Account,
    names: &[String],
    key_pem: &str,
    responder: &Responder<'_>,
    retry: &RetryPolicy,
) -> Result<Obtained, AcmeError> {
    let ca = |action: &str, e: instant_acme::Error| AcmeError::Order {
        action: action.to_string(),
        transient: super::account::transient(&e),
        why: e.to_string(),
    };
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| AcmeError::Csr(format!("the key is not a usable PKCS#8 key: {e}")))?;
    let csr = rcgen::CertificateParams::new(names.to_vec())
        .and_then(|params| params.serialize_request(&key))
        .map_err(|e| AcmeError::Csr(e.to_string()))?;

    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| ca("refused the order", e))?;

    // Every pending authorization's response, in place at once.
    let kind = responder.kind();
    let mut pending = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| ca("did not return an authorization", e))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let host = authz.identifier().to_string();
        let challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            AcmeError::Challenge(format!(
                "the CA offers no {} challenge for {host}",
                responder.name()
            ))
        })?;
        let key_authorization = challenge.key_authorization();
        pending.push(Pending {
            token: challenge.token.clone(),
            key_authorization: key_authorization.as_str().to_string(),
            dns_value: key_authorization.dns_value(),
            host,
        });
    }
    // Held until the CA has looked: a listener stops when it is dropped.
    let _serving = match pending.is_empty() {
        true => None,
        false => responder.present(&pending).await?,
    };
    // Only now, with every response in place (DNS-01: on every
    // authoritative server), may the CA look.
    let not_validated = format!(
        "did not validate the {} challenge ({})",
        responder.name(),
        responder.hint()
    );
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| ca("did not return an authorization", e))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(kind.clone()) {
            challenge.set_ready().await.map_err(|e| {
                if super::account::is_validation_failure(&e) {
                    ca(&not_validated, e)
                } else {
                    ca("did not accept the challenge response", e)
                }
            })?;
        }
    }

    let status = order
        .poll_ready(retry)
        .await
        .map_err(|e| ca(&not_validated, e))?;
    if status != OrderStatus::Ready {
        let problem = order
            .state()
            .error
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "no reason given".into());
        return Err(AcmeError::Order {
            transient: false,
            action: format!("left the order {status:?}"),
            why: format!("{problem}; {}", responder.hint()),
        });
    }
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| ca("refused the certificate request", e))?;
    let chain_pem = order
        .poll_certificate(retry)
        .await
        .map_err(|e| ca("did not issue the certificate", e))?;
    Ok(Obtained {
        chain_pem,
        order_url: order.url().to_string(),
    })
}
