//! The steps of a plan that act on this host — writing the policy file to
//! every webroot (atomically) and running the reload command — and the
//! boundary for the ones that act on DNS.
//!
//! Publishing the TXT record and changing the MX RRset go through the
//! zone's back-end; [`PublishSts`] is that interface (defined and
//! implemented over `dns::publication` in [`super::dns`]). Without one,
//! [`perform`] refuses those steps with an error that says so: nothing here
//! pretends to publish.

use std::path::PathBuf;
use std::time::Duration;

use super::dns::PublishSts;
use super::plan::Step;
use crate::fsutil;

/// Where the file goes under a webroot.
pub const WELL_KNOWN: &str = ".well-known/mta-sts.txt";

/// Mode of the policy file and its directory: the web server reads them.
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// How long the reload command may take.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes `content` to `.well-known/mta-sts.txt` under every webroot, each
/// by atomic replace (a web server never serves half a policy).
pub fn write_policy(webroots: &[PathBuf], content: &str) -> Result<(), String> {
    for root in webroots {
        let file = root.join(WELL_KNOWN);
        let dir = file.parent().unwrap_or(root);
        fsutil::create_dir_all_mode(dir, DIR_MODE)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        fsutil::write_atomic(&file, content.as_bytes(), FILE_MODE)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    Ok(())
}

/// Removes the policy file from every webroot (leaving MTA-STS).
pub fn remove_policy(webroots: &[PathBuf]) -> Result<(), String> {
    for root in webroots {
        let file = root.join(WELL_KNOWN);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
    }
    Ok(())
}

/// The file every webroot holds, if they all hold the same one.
pub fn written(webroots: &[PathBuf]) -> Option<String> {
    let mut texts = webroots
        .iter()
        .map(|root| std::fs::read_to_string(root.join(WELL_KNOWN)).ok());
    let first = texts.next()??;
    texts.all(|t| t.as_deref() == Some(&first)).then_some(first)
}

/// Where a plan's local steps act.
pub struct Local<'a> {
    pub domain: &'a str,
    pub webroots: &'a [PathBuf],
    pub reload: &'a [String],
    /// Variables hidden from the reload command (secrets).
    pub hidden_env: &'a [String],
}

/// Performs one step. Waits, confirmations, holds and alarms are not
/// actions: they return `Ok` and the caller observes again.
pub async fn perform(
    step: &Step,
    local: &Local<'_>,
    dns: Option<&dyn PublishSts>,
) -> Result<(), String> {
    let dns = || {
        dns.ok_or_else(|| {
            format!(
                "{step}: publishing TXT and MX records for MTA-STS is not wired to the DNS back-ends yet; do it by hand"
            )
        })
    };
    let published = match step {
        Step::WriteFile { content, .. } => return write_policy(local.webroots, content),
        Step::Reload { .. } => {
            return crate::command::run(local.reload, RELOAD_TIMEOUT, local.hidden_env)
                .await
                .map_err(|f| format!("the reload command failed ({}){}", f.status, f.output));
        }
        Step::RemoveFile { .. } => return remove_policy(local.webroots),
        Step::PublishTxt { id } => dns()?.publish_txt(local.domain, id).await,
        Step::RemoveTxt { .. } => dns()?.remove_txt(local.domain).await,
        Step::AddMx { host, .. } => dns()?.add_mx(local.domain, host).await,
        Step::RemoveMx { host } => dns()?.remove_mx(local.domain, host).await,
        Step::ConfirmServed { .. }
        | Step::ConfirmTxt { .. }
        | Step::Wait { .. }
        | Step::Hold { .. }
        | Step::Alarm { .. }
        | Step::MxMayEnter { .. } => Ok(()),
    };
    published.map_err(|e| format!("{step}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_written_to_every_webroot_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().join("a"), dir.path().join("b")];
        write_policy(&roots, "version: STSv1\r\n").unwrap();
        assert_eq!(written(&roots).as_deref(), Some("version: STSv1\r\n"));
        std::fs::write(roots[1].join(WELL_KNOWN), "other").unwrap();
        assert_eq!(
            written(&roots),
            None,
            "webroots that differ hold no one file"
        );
        remove_policy(&roots).unwrap();
        assert_eq!(written(&roots), None);
        remove_policy(&roots).unwrap();
    }

    #[tokio::test]
    async fn dns_steps_say_they_are_not_wired() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().to_path_buf()];
        let local = Local {
            domain: "example.com",
            webroots: &roots,
            reload: &[],
            hidden_env: &[],
        };
        let err = perform(&Step::PublishTxt { id: "x".into() }, &local, None)
            .await
            .unwrap_err();
        assert!(err.contains("not wired"), "{err}");
    }
}
