//! The MTA-STS part of `tlsa status` (text): per `[[mta_sts]]` domain, from
//! the history `tlsa run` keeps in the state directory — the policy in
//! effect, older policies senders may still hold and until when, MX hosts
//! on their way out of the policy, and how the last run ended. Files only,
//! like the rest of `status`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use super::common;
use crate::config::Config;
use crate::mtasts::plan::History;
use crate::mtasts::run::{history_file, load_history};
use crate::timestamp::Timestamp;

pub fn print(config: &Config, out: &mut dyn Write, now: SystemTime) -> std::io::Result<()> {
    for sts in &config.mta_sts {
        let domain = sts.domain.get_ref();
        writeln!(out, "mta-sts {domain} (wanted: mode {})", sts.mode)?;
        let path = history_file(&config.state_dir, domain);
        match load_history(&path) {
            Ok(history) => print_history(&history, out, now)?,
            Err(why) => writeln!(out, "  problem: {why}")?,
        }
    }
    Ok(())
}

fn print_history(history: &History, out: &mut dyn Write, now: SystemTime) -> std::io::Result<()> {
    let at = |t: SystemTime| common::when(Timestamp::from_system(t), Timestamp::from_system(now));
    if let Some(last) = &history.last_run {
        let mut line = format!(
            "  last run recorded {}: {}",
            common::when(last.at, Timestamp::from_system(now)),
            last.outcome
        );
        if last.steps > 0 {
            line.push_str(&format!(", {} step(s)", last.steps));
        }
        if let Some(error) = &last.error {
            line.push_str(&format!(": {error}"));
        }
        writeln!(out, "{line}")?;
        if let Some(due) = last.next_due {
            writeln!(
                out,
                "  next step due at {}",
                common::when(due, Timestamp::from_system(now))
            )?;
        }
    } else {
        writeln!(out, "  no run yet: `tlsa run` does what is due")?;
    }
    match history.policies.iter().rev().find(|p| p.current) {
        Some(p) => {
            let announced = match p.announced_at {
                Some(t) => format!("announced since {}", at(t)),
                None => "served, its id not announced yet".into(),
            };
            writeln!(
                out,
                "  served   id {} mode {} max_age {} mx {}; {announced}",
                p.id,
                p.mode,
                p.max_age,
                p.mx.join(" ")
            )?;
        }
        None => writeln!(out, "  served   no policy at the last observation")?,
    }
    // A sender may hold a policy it fetched until max_age after the last
    // instant it was served: those are what an MX change waits for.
    for p in history.policies.iter().filter(|p| !p.current) {
        let until = p.last_served + Duration::from_secs(u64::from(p.max_age));
        if until > now {
            writeln!(
                out,
                "  cached   id {} mode {} mx {}: senders may hold it until {}",
                p.id,
                p.mode,
                p.mx.join(" "),
                at(until)
            )?;
        }
    }
    for removal in &history.mx_removed {
        let until = removal.left_at + Duration::from_secs(u64::from(removal.ttl));
        if until > now {
            writeln!(
                out,
                "  leaving  {} left the MX RRset at {}; leaves the policy after {}",
                removal.host,
                at(removal.left_at),
                at(until)
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mtasts::plan::{MxRemoval, ServedPolicy};
    use crate::mtasts::policy::Mode;

    fn policy(id: &str, current: bool, last_served: SystemTime) -> ServedPolicy {
        ServedPolicy {
            id: id.into(),
            mode: Mode::Testing,
            max_age: 600,
            mx: vec!["mail.example.com".into()],
            first_served: last_served,
            last_served,
            announced_at: Some(last_served),
            current,
        }
    }

    fn render(history: &History, now: SystemTime) -> String {
        let mut out = Vec::new();
        print_history(history, &mut out, now).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shows_the_served_policy_and_only_the_older_ones_still_cacheable() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let history = History {
            policies: vec![
                policy("expired", false, now - Duration::from_secs(601)),
                policy("cached", false, now - Duration::from_secs(100)),
                policy("current", true, now),
            ],
            mx_removed: vec![MxRemoval {
                host: "mx2.example.com".into(),
                left_at: now - Duration::from_secs(10),
                ttl: 300,
            }],
            ..History::default()
        };
        let text = render(&history, now);
        assert!(text.contains("no run yet"), "{text}");
        assert!(text.contains("served   id current mode testing"), "{text}");
        assert!(text.contains("cached   id cached"), "{text}");
        assert!(!text.contains("expired"), "{text}");
        assert!(
            text.contains("leaving  mx2.example.com left the MX RRset"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_history_says_nothing_is_served() {
        let text = render(&History::default(), SystemTime::now());
        assert!(text.contains("no policy at the last observation"), "{text}");
    }
}
