//! Observing a set: the RRsets its owners have, what its servers present,
//! and the plan's view of both with the files.

use super::*;

impl Engine {
    /// Reads every owner's RRset from the primary / provider.
    pub(super) async fn observe(&self, owners: &[Owner]) -> Result<Observed, EngineError> {
        let reads = owners.iter().map(|owner| {
            let zone = &self.zones[owner.zone];
            let id = RrsetId::tlsa(owner.name.clone());
            (owner, zone.provider.as_ref(), &zone.name, id)
        });
        let mut reads = std::pin::pin!(crate::dns::read_rrsets(reads));
        let mut observed = Observed::default();
        while let Some((owner, read)) = reads.next().await {
            let rrset = read?;
            observed.ttls.insert(owner.name.clone(), rrset.ttl);
            observed.records.insert(owner.name.clone(), rrset.tlsa());
        }
        Ok(observed)
    }

    /// What every address of the set presents now (the deploy target's key
    /// for `verify = "deployed-files"` sets).
    pub(super) async fn observe_servers(
        &self,
        run: &SetRun<'_>,
        set_state: &SetState,
    ) -> Result<Vec<PresentedAt>, EngineError> {
        let (set, state_dir) = (run.set, run.dir.as_path());
        if set.verify == VerifyMode::DeployedFiles {
            return Ok(DeployedFiles.presented(set, None).await);
        }
        let kind = self.key_kind(set, state_dir, set_state)?;
        let mut presented = self.servers.presented(set, kind).await;
        // A roll to another kind of key (RSA to ECDSA): a server that still
        // holds the old kind's certificate presents it to senders that ask
        // for that kind, so the old key is looked for with that kind too.
        // Only keys seen count: a server without such a certificate refuses
        // the handshake, which says nothing about this set's key.
        let others: BTreeSet<KeyKind> = set_state
            .keys
            .values()
            .filter(|k| k.removed_at.is_none())
            .filter_map(|k| hex::decode(&k.spki).ok())
            .filter_map(|spki| KeyKind::of_spki(&spki))
            .filter(|other| Some(*other) != kind)
            .collect();
        for other in others {
            let seen = self.servers.presented(set, Some(other)).await;
            presented.extend(seen.into_iter().filter(|p| p.key.is_ok()));
        }
        Ok(presented)
    }

    /// The kind of key the set's servers are asked for: the deployed key's,
    /// else the source's, else what the set generates.
    pub(super) fn key_kind(
        &self,
        set: &CertSet,
        state_dir: &std::path::Path,
        set_state: &SetState,
    ) -> Result<Option<KeyKind>, EngineError> {
        let chains = [
            files::deploy_files(set).chain,
            files::source_files(set, state_dir, set_state)?.chain,
        ];
        for chain in chains {
            if let Some(facts) = files::cert_facts(&chain)? {
                return Ok(KeyKind::of_spki(&facts.key.spki));
            }
        }
        Ok(Some(match set.next_key {
            KeyAlgorithmChoice::EcdsaP256 | KeyAlgorithmChoice::EcdsaP384 => KeyKind::Ecdsa,
            _ => KeyKind::Rsa,
        }))
    }

    /// Asks the plan, given the files, what DNS serves and what the servers present.
    pub(super) fn decide(
        &self,
        run: &SetRun<'_>,
        set_state: &SetState,
        observed: &Observed,
        example_next: Option<KeyMaterial>,
    ) -> Result<Decision, EngineError> {
        let (set, owners, state_dir) = (run.set, run.owners.as_slice(), run.dir.as_path());
        let paired = match &set.source {
            Source::CertbotPair(lineages) => Some(files::pair_roles(set, lineages)?.1),
            _ => None,
        };
        let next = match (&paired, &set_state.next_key) {
            (Some(other), _) => files::cert_facts(&other.chain)?.map(|c| c.key),
            (None, Some(id)) => {
                let path = keys::key_path(state_dir, set.name.get_ref(), id);
                path.exists()
                    .then(|| files::key_material(&path))
                    .transpose()?
                    .filter(|k| &k.id == id)
            }
            (None, None) => None,
        };
        let next = next.or(example_next);
        let policy = Self::policy(set);
        let view = View {
            generates_next: paired.is_none(),
            owners: owners.iter().map(|o| o.name.clone()).collect(),
            policy: &policy,
            fully_managed: set.fully_managed,
            ttl: set.ttl,
            deployed: files::cert_facts(&files::deploy_files(set).chain)?,
            source: files::cert_facts(&files::source_files(set, state_dir, set_state)?.chain)?,
            next,
            presented: observed.presented.clone(),
            publish_unmatched: set.on_unmatched_key == UnmatchedKey::Publish,
            dns: observed.records.clone(),
            ttls: observed.ttls.clone(),
            state: set_state,
            now: self.now(),
        };
        Ok(plan::decide(&view))
    }
}
