//! Wiring: the config's zones become publishing back-ends, server
//! discovery and the writer of each zone; the resolver and trust anchor
//! become the validator.

use super::*;
use crate::dns::publication::Publication;

/// The publishing back-end of a configured zone.
fn build_provider(
    zone: &crate::config::Zone,
    name: &Name,
    secret_env: &[String],
    progress: &Progress,
) -> Result<Box<dyn Provider>, EngineError> {
    use crate::dns::publish::backend::BackendConfig;
    let mut config = zone.backend(name).map_err(EngineError::Config)?;
    match &mut config {
        BackendConfig::Rfc2136(rfc2136) => {
            for warning in rfc2136.key.iter().flat_map(TsigKey::warnings) {
                progress(&format!("warning: zone {name}: {warning}"));
            }
        }
        // The zone file's reload command runs without the config's secrets.
        BackendConfig::ZoneFile(zonefile) => zonefile.hidden_env = secret_env.to_vec(),
        _ => {}
    }
    Ok(config.build()?)
}

impl Engine {
    /// Builds the back-ends, server discovery and the validator from the config.
    pub async fn new(
        config: Config,
        clock: Arc<dyn Clock>,
        servers: Box<dyn Servers>,
        progress: Progress,
    ) -> Result<Engine, EngineError> {
        let mut zones = Vec::new();
        let secret_env = config.secret_env_names();
        for zone in &config.zones {
            let name = parse_name(zone.name.get_ref(), "zone name")?;
            let provider = build_provider(zone, &name, &secret_env, &progress)?;
            let discovery = Discovery::new(name.clone(), Lookup::Resolver(config.dnssec.resolver))
                .port(zone.ns_port)
                .extra(zone.extra_servers.iter().copied());
            zones.push(ZoneParts {
                name,
                provider,
                servers: Box::new(discovery),
            });
        }
        let validator = match config.dnssec.mode {
            ValidationMode::Anchored => {
                let anchors = match &config.dnssec.anchor {
                    Some(file) => Anchors::File(file.clone()),
                    None => Anchors::RootKeys,
                };
                Validator::anchored(config.dnssec.resolver, &anchors).await?
            }
            ValidationMode::Ad => Validator::resolver_ad(config.dnssec.resolver),
        };
        let parts = Parts {
            zones,
            validator: Box::new(validator),
            servers,
        };
        Ok(Engine::from_parts(config, clock, parts, progress))
    }

    /// An engine over the given back-ends, servers and validator (fakes in
    /// tests); the config's zones must match `parts.zones` in order.
    pub fn from_parts(
        config: Config,
        clock: Arc<dyn Clock>,
        parts: Parts,
        progress: Progress,
    ) -> Engine {
        let zones = parts
            .zones
            .into_iter()
            .map(|zone| ZoneRuntime {
                name: zone.name,
                provider: zone.provider,
                servers: zone.servers,
                writer: ZoneWriter::default(),
            })
            .collect();
        let secret_env = config.secret_env_names();
        Engine {
            config,
            clock,
            zones,
            validator: parts.validator,
            servers: parts.servers,
            progress,
            countdown: None,
            serials: Mutex::new(BTreeMap::new()),
            secret_env,
        }
    }
}

impl Engine {
    /// A publication of whole RRsets at `owner` (MTA-STS id, TLS-RPT
    /// record, ACME challenge, managed MX) into the configured zone holding
    /// it (the longest match), through the same back-end, server discovery,
    /// validator and clock as the roll. `timeout`: how long every server may
    /// take to serve the change.
    pub fn publication_for(
        &self,
        owner: &Name,
        timeout: Duration,
    ) -> Result<Publication<'_>, EngineError> {
        let zone = self
            .zones
            .iter()
            .filter(|z| z.name.zone_of(owner))
            .max_by_key(|z| z.name.num_labels())
            .ok_or_else(|| {
                EngineError::Config(format!(
                    "no [[zone]] in the config contains {owner}; add the zone that holds this name"
                ))
            })?;
        Ok(Publication {
            zone: &zone.name,
            provider: zone.provider.as_ref(),
            servers: zone.servers.as_ref(),
            validator: self.validator.as_ref(),
            clock: self.clock.as_ref(),
            timeout,
            progress: &self.progress,
        })
    }

    /// The configured propagation timeout (`propagation_timeout`).
    pub fn configured_propagation_timeout(&self) -> Duration {
        Duration::from_secs(self.config.propagation_timeout)
    }
}
