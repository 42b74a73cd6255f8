//! The run loop: every selected set as its own task, each asking the plan
//! for the step due, performing it and recording what happened, until
//! nothing is due (or, with `--wait`, until nothing is pending).

use super::*;

impl Engine {
    /// Runs every due step of every selected set, several sets at once; a
    /// set that fails is reported in its outcome and the others go on.
    ///
    /// Each set runs as its own task, so a multi-threaded runtime spreads
    /// the sets' work (validation, message handling, state writes) over
    /// its threads; a set whose task panicked is reported as failed.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<StateStore>,
        options: &RunOptions,
    ) -> Result<Vec<SetOutcome>, EngineError> {
        if let Some(unknown) = options
            .sets
            .iter()
            .find(|s| !self.config.sets.iter().any(|c| c.name.get_ref() == *s))
        {
            return Err(EngineError::Config(format!(
                "no certificate set named {unknown:?} in the config"
            )));
        }
        let journal = Arc::new(Journal::new(store.clone(), store.load()?));
        let selected: Vec<usize> = (0..self.config.sets.len())
            .filter(|&i| {
                options.sets.is_empty() || options.sets.contains(self.config.sets[i].name.get_ref())
            })
            .collect();
        let concurrency = options
            .concurrency
            .unwrap_or(self.config.concurrency)
            .max(1);
        let shared_options = Arc::new(options.clone());
        let mut outcomes: Vec<(usize, SetOutcome)> = futures_util::stream::iter(selected)
            .map(|index| {
                let (engine, journal, options) =
                    (self.clone(), journal.clone(), shared_options.clone());
                let name = self.config.sets[index].name.get_ref().clone();
                let task = tokio::spawn(async move {
                    let set = &engine.config.sets[index];
                    engine.run_set_reporting(set, &journal, &options).await
                });
                async move {
                    let outcome = task.await.unwrap_or_else(|e| SetOutcome {
                        failure: Some(SetFailure {
                            kind: FailureKind::Other,
                            message: format!(
                                "set {name}: internal error ({e}); this is a bug, please report it"
                            ),
                        }),
                        set: name,
                        ..SetOutcome::default()
                    });
                    (index, outcome)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        outcomes.sort_by_key(|(index, _)| *index);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }

    /// One set's run, with its failure in the outcome.
    pub(super) async fn run_set_reporting(
        &self,
        set: &CertSet,
        journal: &Journal,
        options: &RunOptions,
    ) -> SetOutcome {
        let mut outcome = SetOutcome {
            set: set.name.get_ref().clone(),
            ..SetOutcome::default()
        };
        if let Err(error) = self.run_set(set, journal, options, &mut outcome).await {
            let kind = match error {
                EngineError::Config(_) => FailureKind::Config,
                EngineError::NotPropagated(_) => FailureKind::NotPropagated,
                _ => FailureKind::Other,
            };
            outcome.failure = Some(SetFailure {
                kind,
                message: error.to_string(),
            });
        }
        // Whatever the run did, a certificate close to its end without a
        // renewal is said loudly, days ahead, with the CA's last error.
        if let Some(alarm) = self.expiry_alarm(set, &journal.get(set.name.get_ref())) {
            outcome.failure = Some(match outcome.failure.take() {
                Some(failure) => SetFailure {
                    kind: FailureKind::Other,
                    message: format!(
                        "ALARM: set {}: {alarm}. {}",
                        set.name.get_ref(),
                        failure.message
                    ),
                },
                None => SetFailure {
                    kind: FailureKind::Other,
                    message: format!("ALARM: set {}: {alarm}", set.name.get_ref()),
                },
            });
        }
        if let Err(error) = self.record_last_run(set, journal, &outcome).await
            && outcome.failure.is_none()
        {
            outcome.failure = Some(SetFailure {
                kind: FailureKind::Other,
                message: error.to_string(),
            });
        }
        outcome
    }

    /// Keeps how the run ended in the set's state, for `tlsa status`.
    pub(super) async fn record_last_run(
        &self,
        set: &CertSet,
        journal: &Journal,
        outcome: &SetOutcome,
    ) -> Result<(), EngineError> {
        let (result, error) = match (&outcome.failure, outcome.emergency) {
            (Some(failure), _) if failure.message.starts_with("ALARM") => {
                ("alarm", Some(failure.message.clone()))
            }
            (Some(failure), _) => ("failed", Some(failure.message.clone())),
            (None, true) => ("alarm", Some(outcome.alarms.join("; "))),
            (None, false) if outcome.waiting.is_some() => ("waiting", outcome.waiting.clone()),
            (None, false) if !outcome.done.is_empty() => ("done", None),
            (None, false) => ("idle", None),
        };
        let record = LastRun {
            at: self.now(),
            outcome: result.to_string(),
            steps: outcome.done.len(),
            error,
            next_due: outcome.wake_at,
        };
        let name = set.name.get_ref();
        let mut entry = journal.get(name);
        let worth = entry
            .last_run
            .as_ref()
            .is_none_or(|old| record.worth_saving_over(old, crate::roll::idle::MARK_REFRESH));
        if worth {
            entry.last_run = Some(record);
            journal.put(name, &entry).await?;
        }
        Ok(())
    }

    pub(super) async fn run_set(
        &self,
        set: &CertSet,
        journal: &Journal,
        options: &RunOptions,
        outcome: &mut SetOutcome,
    ) -> Result<(), EngineError> {
        let name = set.name.get_ref().clone();
        let run = SetRun {
            set,
            owners: self.owners_in_zones(set)?,
            dir: journal.store().dir().to_path_buf(),
            timeout: self.propagation_timeout(options),
        };
        let mut entry = journal.get(&name);
        // An ACME order that failed is not made again automatically before
        // its backoff ends; an operator's `tlsa rollover` asks anyway.
        let may_order = options.rollover || !self.acme_backing_off(set, &entry);
        let mut first_key = false;
        if may_order {
            let backoff = entry.acme_backoff.clone();
            let prepared = self.prepare_source(&run, &mut entry).await;
            let prepared = self.note_order(set, prepared, &mut entry);
            // An idle run writes no state.
            if prepared.as_ref().is_ok_and(|changed| *changed) || entry.acme_backoff != backoff {
                journal.put(&name, &entry).await?;
            }
            first_key = prepared?;
        }
        // A set that just got its first key has nothing to roll to yet: its
        // next key is generated and published by the steps below.
        let roll_asked = options.rollover && !(first_key && entry.next_key.is_none());
        // When the live certificate is renewed: the CA's window, asked for
        // when the last answer's Retry-After has passed.
        if may_order && !roll_asked && self.refresh_renewal_info(&run, &mut entry).await {
            journal.put(&name, &entry).await?;
        }
        if roll_asked || (!options.rollover && may_order && self.renewal_due(set, &entry)?) {
            let started = match roll_asked || !self.renewal_keeps_key(set, &entry) {
                true => self.start_rollover(&run, &mut entry).await,
                false => self.renew_keeping_key(&run, &mut entry).await,
            };
            let started = self.note_order(set, started, &mut entry);
            journal.put(&name, &entry).await?;
            started?;
        } else if options.rollover && first_key {
            self.say(&format!(
                "set {name}: first key in place; no roll yet (its next key is published now, a later `tlsa rollover` rolls to it)"
            ));
        }
        for _ in 0..MAX_STEPS_PER_RUN {
            let mut observed = self.observe(&run.owners).await?;
            observed.presented = self.observe_servers(&run, &entry).await?;
            let presented = observed.presented.clone();
            let decision = self.decide(&run, &entry, &observed, None)?;
            for alarm in &decision.alarms {
                let text = alarm.to_string();
                if !outcome.alarms.contains(&text) {
                    self.say(&format!("ALARM: set {name}: {text}"));
                    outcome.alarms.push(text);
                }
            }
            outcome.emergency |= decision.emergency();
            for notice in &decision.notices {
                if !outcome.notices.contains(notice) {
                    self.say(&format!("set {name}: notice: {notice}"));
                    outcome.notices.push(notice.clone());
                }
            }
            let before = entry.clone();
            remember_presented(&mut entry, &presented, self.now());
            let longest_ttl = observed
                .before()
                .longest_ttl
                .unwrap_or(set.ttl)
                .max(set.ttl);
            self.track_emergency(&mut entry, &decision, &presented, longest_ttl);
            if decision.step.is_none() && decision.wake_at.is_none() && entry.alarm.is_none() {
                let mark = crate::roll::idle::mark(set, &run.dir, &entry, self.now())?;
                // Refreshed only now and then: an idle run from cron writes no state.
                if entry
                    .idle
                    .as_ref()
                    .is_none_or(|old| crate::roll::idle::worth_refreshing(old, &mark))
                {
                    entry.idle = Some(mark);
                }
            } else {
                entry.idle = None;
            }
            if entry != before {
                journal.put(&name, &entry).await?;
            }
            if let Some(step) = &decision.step
                && !options.confirm
                && step.is_manual(&set.manual)
            {
                outcome.waiting = Some(format!(
                    "the next step ({step}) is manual: run `tlsa run --confirm --set {name}` to perform it"
                ));
                return Ok(());
            }
            let Some(step) = decision.step else {
                outcome.wake_at = decision.wake_at;
                outcome.waiting = decision.waiting.clone();
                if let (true, Some(at)) = (options.wait, decision.wake_at) {
                    self.wait_until(&name, at, decision.waiting.as_deref())
                        .await;
                    continue;
                }
                if outcome.emergency
                    && let Some(until) = entry.alarm_until
                {
                    let text = format!(
                        "the presented key's records are published again; resolvers that cached the RRset without them may still make DANE senders refuse mail until {}",
                        when(until, self.now())
                    );
                    self.say(&format!("ALARM: set {name}: {text}"));
                    outcome.alarms.push(text);
                }
                return Ok(());
            };
            let summary = step.to_string();
            self.say(&format!("set {name}: {summary}"));
            if matches!(step, Step::Deploy { .. }) {
                // Known before the files change: see `SetState::reload_pending`.
                entry.reload_pending = true;
                journal.put(&name, &entry).await?;
            }
            let before_step = entry.clone();
            if let Err(error) = self.execute(&run, &mut entry, step, &observed).await {
                // What a step records before acting (a TTL hold) must
                // survive its failure: the change may have been applied.
                if entry != before_step {
                    journal.put(&name, &entry).await?;
                }
                return Err(error);
            }
            entry.record(self.now(), summary.clone());
            journal.put(&name, &entry).await?;
            outcome.done.push(summary);
            if options.stop_after_steps == Some(outcome.done.len()) {
                return Ok(());
            }
        }
        Err(EngineError::Internal(format!(
            "set {name}: more than {MAX_STEPS_PER_RUN} steps in one run; this is a bug, please report it with the state file"
        )))
    }

    /// Sleeps until `at` (and a little past, so the plan sees it passed),
    /// redrawing a countdown on a terminal.
    pub(super) async fn wait_until(&self, set: &str, at: Timestamp, why: Option<&str>) {
        if let Some(why) = why {
            self.say(&format!(
                "set {set}: waiting until {}: {why}",
                when(at, self.now())
            ));
        }
        loop {
            let left = self.now().until(at);
            if left.is_zero() {
                break;
            }
            match &self.countdown {
                Some(countdown) => {
                    countdown(&format!(
                        "set {set}: {:.0} s to wait",
                        left.as_secs_f64().ceil()
                    ));
                    self.clock.sleep(left.min(COUNTDOWN_TICK)).await;
                }
                None => self.clock.sleep(left).await,
            }
        }
        if let Some(countdown) = &self.countdown {
            countdown("");
        }
        // tokio never wakes early; 2 ms covers rounding to the millisecond.
        self.clock.sleep(Duration::from_millis(2)).await;
    }

    /// Keeps the emergency alarm in the state while a presented key is
    /// unmatched, and until every cache that may hold an RRset without it
    /// has expired (the presented keys' `safe_at`), so `tlsa status` shows
    /// it all that time.
    pub(super) fn track_emergency(
        &self,
        entry: &mut SetState,
        decision: &Decision,
        presented: &[PresentedAt],
        longest_ttl: u32,
    ) {
        if let Some(alarm) = decision.alarms.first() {
            entry.alarm = Some(alarm.to_string());
            entry.alarm_until = None;
            return;
        }
        if entry.alarm.is_none() {
            return;
        }
        // An address not observed may still present the unmatched key.
        if presented.iter().any(|p| p.key.is_err()) {
            return;
        }
        let now = self.now();
        // A key tlsa did not publish (with on_unmatched_key = "alarm", one
        // published by hand) has no safe_at: caches may hold an RRset
        // without it for the longest TTL, counted from when its record was
        // first seen (the first run that raised no alarm).
        let cache = Duration::from_secs(u64::from(longest_ttl)) + ttl::RESOLVER_CLOCK_GRANULARITY;
        let first_clean = entry.alarm_until.unwrap_or(now + cache);
        let safe_times: Vec<Option<Timestamp>> = presented
            .iter()
            .filter_map(|p| p.key.as_ref().ok())
            .map(|key| match entry.keys.get(&key.id) {
                Some(state) => state.safe_at,
                None => Some(first_clean),
            })
            .collect();
        // Unknown (a key not yet confirmed) keeps the alarm up.
        entry.alarm_until = safe_times
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max());
        if entry.alarm_until.is_some_and(|until| until <= self.now()) {
            entry.alarm = None;
            entry.alarm_until = None;
        }
    }

    /// What the plan would do now for every set (or the named ones),
    /// without doing it (and without the lock: `tlsa plan` may run beside a
    /// `tlsa run`). When the step due is generating a next key, the preview
    /// also shows what follows with an example key made in memory (never
    /// written), so that a new set's whole first publication can be seen.
    pub async fn preview(
        &self,
        state: &State,
        only: &[String],
    ) -> Result<Vec<Preview>, EngineError> {
        let mut previews = Vec::new();
        for set in &self.config.sets {
            let name = set.name.get_ref();
            if !only.is_empty() && !only.contains(name) {
                continue;
            }
            let run = SetRun {
                set,
                owners: self.owners_in_zones(set)?,
                dir: self.config.state_dir.clone(),
                timeout: self.configured_propagation_timeout(),
            };
            let empty = SetState::default();
            let set_state = state.sets.get(name).unwrap_or(&empty);
            let mut observed = self.observe(&run.owners).await?;
            observed.presented = self.observe_servers(&run, set_state).await?;
            let decide = |example| self.decide(&run, set_state, &observed, example);
            let decision = decide(None)?;
            let then = match decision.step {
                Some(Step::GenerateNextKey) => {
                    Some(decide(Some(keys::example_key(set.next_key)?))?)
                }
                _ => None,
            };
            previews.push(Preview {
                set: name.clone(),
                order: self.order_preview(&run, set_state)?,
                decision,
                then,
                observed,
            });
        }
        Ok(previews)
    }
}
