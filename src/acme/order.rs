//! One order: the certificate for a key tlsa already holds (the set's live
//! or pre-published next key: the CSR is signed with it, so the CA's
//! certificate carries exactly that SPKI), validated by DNS-01. Challenge
//! records are removed after success and after every failure; leftovers of
//! a killed run are removed before a new order starts.

use std::collections::BTreeMap;

use hickory_proto::rr::Name;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};

use super::AcmeError;
use super::dns01::{Challenges, challenge_owner};

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
    challenges: &Challenges<'_>,
    retry: &RetryPolicy,
) -> Result<Obtained, AcmeError> {
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let names = names.as_slice();
    let owners = names
        .iter()
        .map(|n| challenge_owner(n))
        .collect::<Result<Vec<Name>, _>>()?;
    challenges.clear(&owners).await?;
    let result = order(account, names, key_pem, challenges, retry).await;
    let cleared = challenges.clear(&owners).await;
    let obtained = result?;
    cleared?;
    Ok(obtained)
}

async fn order(
    account: &Account,
    names: &[String],
    key_pem: &str,
    challenges: &Challenges<'_>,
    retry: &RetryPolicy,
) -> Result<Obtained, AcmeError> {
    let ca = |action: &str, e: instant_acme::Error| AcmeError::Order {
        action: action.to_string(),
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

    // Every pending authorization's DNS-01 value, published at once.
    let mut values: BTreeMap<Name, Vec<String>> = BTreeMap::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| ca("did not return an authorization", e))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let host = authz.identifier().to_string();
        let challenge = authz.challenge(ChallengeType::Dns01).ok_or_else(|| {
            AcmeError::Challenge(format!("the CA offers no dns-01 challenge for {host}"))
        })?;
        let value = challenge.key_authorization().dns_value();
        values
            .entry(challenge_owner(&host)?)
            .or_default()
            .push(value);
    }
    if !values.is_empty() {
        challenges.publish(&values).await?;
    }
    // Only now, with the records on every authoritative server, may the CA look.
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| ca("did not return an authorization", e))?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(ChallengeType::Dns01) {
            challenge
                .set_ready()
                .await
                .map_err(|e| ca("did not accept the challenge response", e))?;
        }
    }

    let status = order.poll_ready(retry).await.map_err(|e| {
        ca(
            "did not validate the DNS-01 challenge (check that its resolver reaches the zone's authoritative servers)",
            e,
        )
    })?;
    if status != OrderStatus::Ready {
        let problem = order
            .state()
            .error
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "no reason given".into());
        return Err(AcmeError::Order {
            action: format!("left the order {status:?}"),
            why: format!(
                "{problem}; check that the CA's resolver sees the zone's authoritative servers"
            ),
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
