//! Performing one step, with the checks it depends on: Secure before any
//! change, propagation on every server before a key counts as published,
//! every address presenting a deployed key before it counts as verified.

use super::*;

impl Engine {
    pub(super) async fn execute(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
        step: Step,
        observed: &Observed,
    ) -> Result<(), EngineError> {
        let (set, dir) = (run.set, run.dir.as_path());
        let now = self.now();
        match step {
            Step::Publish { keys, edits } => {
                self.change(run, entry, &edits, observed).await?;
                safety::note_published(entry, &keys, observed.before(), now);
            }
            Step::Retire { keys, added, edits } => {
                self.change(run, entry, &edits, observed).await?;
                safety::note_published(entry, &added, observed.before(), now);
                for id in keys {
                    if let Some(key) = entry.keys.get_mut(&id) {
                        key.removed_at = Some(now);
                    }
                }
            }
            Step::Reconcile { edits } => {
                self.change(run, entry, &edits, observed).await?;
            }
            Step::AwaitPropagation { keys, removed } => {
                self.await_propagation(run, entry, &keys, observed).await?;
                for id in removed {
                    entry.keys.remove(&id);
                }
            }
            Step::GenerateNextKey => {
                let (key, _) = keys::create_next_key(dir, set.name.get_ref(), set.next_key)?;
                entry.next_key = Some(key.id);
            }
            Step::Deploy { key, .. } => {
                let source = files::source_files(set, dir, entry)?;
                // The plan decided on what the source held a moment ago; an
                // ACME client may have replaced it since.
                let found = files::cert_facts(&source.chain)?.map(|c| c.key.id);
                if found.as_deref() != Some(key.as_str()) {
                    return Err(EngineError::SourceChanged {
                        set: set.name.get_ref().clone(),
                        file: source.chain.clone(),
                        expected: plan::short(&key).to_string(),
                        found: found.as_deref().map_or("none", plan::short).to_string(),
                    });
                }
                files::install(&source, &files::deploy_files(set))?;
                files::reload(&set.deploy.reload, &self.secret_env).await?;
                entry.reload_pending = false;
                entry.deployed = Some(key.clone());
                entry.verify_failure = None;
                // Every deploy is verified live before it counts.
                entry.verified = None;
                entry.rollover_requested_at = None;
                entry.rollover_to = None;
            }
            Step::Verify { key } => {
                // Right after a deploy the servers take a moment to reload:
                // poll. Otherwise the verification was asked for because an
                // address presented another key, or the last one is old: one
                // look, and the mismatch that caused it counts as seen.
                let after_deploy = entry.verified.as_ref().is_none_or(|v| v.key != key);
                let presented = if after_deploy {
                    self.await_presented(run, entry, &key).await?
                } else if mismatched(&observed.presented, &key) {
                    observed.presented.clone()
                } else {
                    self.observe_servers(run, entry).await?
                };
                remember_presented(entry, &presented, self.now());
                let others: Vec<String> = presented
                    .iter()
                    .filter_map(|p| match &p.key {
                        Ok(other) if other.id != key => {
                            Some(format!("{} presents key {}", p.address, other.short()))
                        }
                        _ => None,
                    })
                    .collect();
                let unseen: Vec<String> = presented
                    .iter()
                    .filter_map(|p| {
                        p.key
                            .as_ref()
                            .err()
                            .map(|why| format!("{}: {why}", p.address))
                    })
                    .collect();
                if !others.is_empty() || presented.is_empty() {
                    // A deploy that did not take effect: the next run reloads
                    // again before it checks again.
                    entry.reload_pending = true;
                    entry.verified = None;
                    let why = if presented.is_empty() {
                        "no address to check".to_string()
                    } else {
                        others
                            .into_iter()
                            .chain(unseen)
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    let error = EngineError::NotVerified {
                        set: set.name.get_ref().clone(),
                        key: plan::short(&key).to_string(),
                        why,
                    };
                    entry.verify_failure = Some(error.to_string());
                    return Err(error);
                }
                if !unseen.is_empty() {
                    // Not a failed deploy: some address cannot be reached.
                    // Nothing is removed until it can; no reload either.
                    entry.verified = None;
                    return Err(EngineError::NotObserved {
                        set: set.name.get_ref().clone(),
                        key: plan::short(&key).to_string(),
                        why: unseen.join("; "),
                    });
                }
                entry.verify_failure = None;
                entry.verified = Some(Verified {
                    key,
                    at: self.now(),
                });
            }
        }
        Ok(())
    }

    /// Observes the servers until every address presents `key` in
    /// [`CLEAN_LOOKS`] observations in a row (a pool behind one address may
    /// answer from a backend that was not reloaded), for at most
    /// [`VERIFY_TIMEOUT`]; returns the last observation, or the first one
    /// that showed another key after the clean looks began.
    pub(super) async fn await_presented(
        &self,
        run: &SetRun<'_>,
        entry: &SetState,
        key: &str,
    ) -> Result<Vec<PresentedAt>, EngineError> {
        let deadline = self.clock.now() + VERIFY_TIMEOUT;
        let mut clean = 0;
        let mut pause = VERIFY_POLL;
        loop {
            let presented = self.observe_servers(run, entry).await?;
            let everywhere = !presented.is_empty()
                && presented
                    .iter()
                    .all(|p| p.key.as_ref().is_ok_and(|k| k.id == key));
            if everywhere {
                clean += 1;
                if clean >= CLEAN_LOOKS {
                    return Ok(presented);
                }
            } else if clean > 0 && mismatched(&presented, key) {
                // It was presented everywhere, and now it is not: a mixed pool.
                return Ok(presented);
            } else {
                clean = 0;
            }
            if self.clock.now() >= deadline {
                return Ok(presented);
            }
            self.clock.sleep(pause).await;
            // Clean looks in a row stay close together; waiting for a reload backs off.
            if clean == 0 {
                pause = (pause * 3 / 2).min(VERIFY_POLL_MAX);
            }
        }
    }

    /// Applies a change set (one UPDATE / API call per zone), after checking
    /// that every owner validates as Secure. A lowered TTL is remembered: a
    /// cache may hold the RRset with the old, longer TTL for that long.
    pub(super) async fn change(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
        edits: &[Edit],
        observed: &Observed,
    ) -> Result<(), EngineError> {
        let owners = run.owners.as_slice();
        self.require_secure(owners).await?;
        let new_ttl = edits.iter().map(|e| e.ttl).max();
        safety::hold_lowered_ttl(
            &mut entry.ttl_hold,
            observed.before().longest_ttl,
            new_ttl,
            self.now(),
            run.timeout,
        );
        for zone_index in Self::zones_of(owners) {
            let zone = &self.zones[zone_index];
            let in_zone: Vec<Edit> = edits
                .iter()
                .filter(|e| {
                    owners
                        .iter()
                        .any(|o| o.zone == zone_index && o.name == e.owner)
                })
                .cloned()
                .collect();
            if in_zone.is_empty() {
                continue;
            }
            let known = in_zone
                .iter()
                .filter_map(|e| observed.rrset(&e.owner))
                .collect();
            let applied = zone
                .writer
                .apply(zone.provider.as_ref(), &zone.name, in_zone, known)
                .await?;
            if let Some(serial) = applied.and_then(|a| a.serial) {
                let mut serials = self.serials.lock().unwrap_or_else(|e| e.into_inner());
                // Sets' changes finish in any order: keep the newest serial.
                let known = serials.entry(zone_index).or_insert(serial);
                if propagation::serial_at_least(serial, *known) {
                    *known = serial;
                }
            }
        }
        Ok(())
    }

    /// Refuses to change anything unless every owner validates as Secure
    /// (positive or negative answer).
    pub(super) async fn require_secure(&self, owners: &[Owner]) -> Result<(), EngineError> {
        let ids: Vec<RrsetId> = owners
            .iter()
            .map(|o| RrsetId::tlsa(o.name.clone()))
            .collect();
        let validations = self.validator.validate_all(&ids).await;
        for (owner, validation) in owners.iter().zip(validations) {
            if !validation.is_acceptable_for_changes() {
                return Err(EngineError::Insecure {
                    zone: self.zones[owner.zone].name.to_string(),
                    why: format!(
                        "{}: {validation}; tlsa only publishes into, and removes from, zones that validate as Secure",
                        owner.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Waits until every authoritative address of every zone involved
    /// serves what the primary serves (as just observed), validates it, and
    /// records when each key is safe.
    pub(super) async fn await_propagation(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
        keys: &[KeyMaterial],
        observed: &Observed,
    ) -> Result<(), EngineError> {
        let (set, owners) = (run.set, run.owners.as_slice());
        let deadline = self.clock.now() + run.timeout;
        let mut facts = ttl::TtlFacts::default();
        let mut propagated_at = SystemTime::UNIX_EPOCH;
        let policy = Self::policy(set);
        let own = safety::records_of_set(entry, keys, &policy.issuer_records);
        for zone_index in Self::zones_of(owners) {
            let zone = &self.zones[zone_index];
            let rrsets = owners.iter().filter(|o| o.zone == zone_index).map(|o| {
                let primary = observed.records.get(&o.name).cloned().unwrap_or_default();
                let id = crate::dns::RrsetId::tlsa(o.name.clone());
                (id, safety::propagation_want(&primary, &own))
            });
            let min_serial = self
                .serials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&zone_index)
                .copied();
            let expected = Expected {
                rrsets: rrsets.collect(),
                min_serial,
            };
            let servers = zone.servers.find().await?;
            let name = set.name.get_ref();
            let report = |lags: &[propagation::Lag]| {
                let lines: Vec<String> = lags.iter().map(ToString::to_string).collect();
                (self.progress)(&format!(
                    "set {name}: waiting for zone {} on {} address(es):\n    {}",
                    zone.name,
                    lags.len(),
                    lines.join("\n    ")
                ));
            };
            let propagated = propagation::wait_reporting(
                servers.as_ref(),
                self.clock.as_ref(),
                &expected,
                deadline,
                &report,
            )
            .await
            .map_err(|e| EngineError::NotPropagated(e.to_string()))?;
            facts = propagation::worst_ttl_by_rrset(&propagated.observation)
                .into_values()
                .fold(facts, ttl::TtlFacts::longest);
            propagated_at = propagated_at.max(propagated.at);
        }
        self.require_secure(owners).await?;
        safety::confirm_hold(&mut entry.ttl_hold, propagated_at);
        let found = safety::Propagation {
            at: propagated_at,
            facts,
            prior_ttl: safety::prior_ttl(
                entry.ttl_hold.as_ref(),
                observed.before().longest_ttl,
                self.now(),
            ),
            margin: Duration::from_secs(set.margin),
        };
        for key in keys {
            // Only a key whose records every server serves can become safe.
            let records = policy.records_for_key(&key.spki);
            if observed
                .records
                .values()
                .all(|served| records.is_subset(served))
            {
                safety::mark_propagated(entry, key, &found);
            }
        }
        Ok(())
    }

    /// A self-signed or ACME set without any certificate gets its first
    /// one. Returns whether the state changed.
    pub(super) async fn prepare_source(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
    ) -> Result<bool, EngineError> {
        let (set, dir) = (run.set, run.dir.as_path());
        if !matches!(set.source, Source::SelfSigned { .. } | Source::Acme(_)) {
            return Ok(false);
        }
        let staged = files::source_files(set, dir, entry)?;
        let deployed = files::deploy_files(set);
        if staged.chain.exists() || deployed.chain.exists() {
            return Ok(false);
        }
        let name = set.name.get_ref();
        let (key, path) = keys::create_next_key(dir, name, set.next_key)?;
        let chain = self.certificate_for(run, &path).await?;
        stage(&path, chain, &staged)?;
        self.say(&format!(
            "set {name}: first key {} generated, certificate staged",
            key.short()
        ));
        entry.record(self.now(), "first key generated");
        Ok(true)
    }

    /// The certificate of a key tlsa holds: self-signed, or ordered from the
    /// set's ACME CA.
    async fn certificate_for(
        &self,
        run: &SetRun<'_>,
        key_path: &std::path::Path,
    ) -> Result<String, EngineError> {
        let set = run.set;
        match &set.source {
            Source::SelfSigned { names } => {
                Ok(keys::self_signed_pem(key_path, names, SELF_SIGNED_DAYS)?)
            }
            Source::Acme(acme) => self.order_certificate(run, acme, key_path).await,
            _ => Err(EngineError::Internal(format!(
                "set {}: tlsa makes no certificate for this source",
                set.name.get_ref()
            ))),
        }
    }

    /// A planned roll: the next key gets a certificate and becomes the source.
    pub(super) async fn start_rollover(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
    ) -> Result<(), EngineError> {
        let (set, dir) = (run.set, run.dir.as_path());
        let name = set.name.get_ref();
        let now = self.now();
        if let Source::CertbotPair(lineages) = &set.source {
            let (live, other) = files::pair_roles(set, lineages)?;
            let live_key = files::cert_facts(&live.chain)?.map(|c| c.key.id);
            let Some(next) = files::cert_facts(&other.chain)?.map(|c| c.key.id) else {
                return Err(EngineError::Config(format!(
                    "set {name}: the other lineage {} has no certificate yet; issue one there (certbot certonly --cert-name …) first",
                    other.chain.display()
                )));
            };
            if Some(&next) == live_key.as_ref() {
                return Err(EngineError::Config(format!(
                    "set {name}: both lineages hold the same key; renew {} with --new-key first",
                    other.chain.display()
                )));
            }
            entry.rollover_requested_at = Some(now);
            entry.record(
                now,
                format!("rollover to key {} requested", plan::short(&next)),
            );
            entry.rollover_to = Some(next);
            return Ok(());
        }
        if !matches!(set.source, Source::SelfSigned { .. } | Source::Acme(_)) {
            return Err(EngineError::Config(format!(
                "set {name}: a planned roll needs a certificate for the next key; use a certbot pair or acme source (see the README), or request one with `tlsa csr {name}` and let the deploy hook bring it in"
            )));
        }
        let Some(next) = entry.next_key.clone() else {
            return Err(EngineError::Config(format!(
                "set {name}: no next key yet; run `tlsa run` first so that one is generated and published"
            )));
        };
        let path = keys::key_path(dir, name, &next);
        let chain = self.certificate_for(run, &path).await?;
        stage(&path, chain, &files::source_files(set, dir, entry)?)?;
        entry.acme_kept_key = 0;
        entry.rollover_requested_at = Some(now);
        entry.record(
            now,
            format!("rollover to key {} requested", plan::short(&next)),
        );
        entry.rollover_to = Some(next);
        Ok(())
    }
}

impl Engine {
    /// An `acme` renewal whose policy (`roll_every`) keeps the key: a new
    /// certificate for the live key, staged where the plan deploys it from
    /// (a same-key deploy: the records stay as they are).
    pub(super) async fn renew_keeping_key(
        &self,
        run: &SetRun<'_>,
        entry: &mut SetState,
    ) -> Result<(), EngineError> {
        let (set, dir) = (run.set, run.dir.as_path());
        let staged = files::source_files(set, dir, entry)?;
        let chain = self.certificate_for(run, &staged.key).await?;
        stage(&staged.key, chain, &staged)?;
        entry.acme_kept_key += 1;
        entry.record(
            self.now(),
            "certificate renewed for the same key (roll_every)",
        );
        self.say(&format!(
            "set {}: renewed keeping the key ({} renewal(s) since the last key roll)",
            set.name.get_ref(),
            entry.acme_kept_key
        ));
        Ok(())
    }

    /// Whether the renewal due now keeps the key.
    pub(super) fn renewal_keeps_key(&self, set: &CertSet, entry: &SetState) -> bool {
        matches!(&set.source, Source::Acme(acme) if acme.keeps_key(entry.acme_kept_key))
    }
}

/// Stages the key at `key_path` with its certificate chain `pem` into `to`.
pub(super) fn stage(
    key_path: &std::path::Path,
    pem: String,
    to: &CertFiles,
) -> Result<(), EngineError> {
    let key = std::fs::read(key_path).map_err(|e| FileError::Read {
        file: key_path.to_path_buf(),
        why: e.to_string(),
    })?;
    let dir = to.chain.parent().expect("staged files live in a directory");
    crate::fsutil::create_dir_all_mode(dir, crate::fsutil::PRIVATE_DIR).map_err(|e| {
        FileError::Write {
            file: dir.to_path_buf(),
            why: e.to_string(),
        }
    })?;
    for (path, content, mode) in [(&to.key, key, 0o600), (&to.chain, pem.into_bytes(), 0o644)] {
        crate::fsutil::write_atomic(path, &content, mode).map_err(|e| FileError::Write {
            file: path.clone(),
            why: e.to_string(),
        })?;
    }
    Ok(())
}

/// Some address presents a key other than `key`.
fn mismatched(presented: &[PresentedAt], key: &str) -> bool {
    presented
        .iter()
        .any(|p| p.key.as_ref().is_ok_and(|k| k.id != key))
}
