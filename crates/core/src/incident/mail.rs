//! E-mail to the team through the local mailer (`sendmail -t` or one that
//! reads the same: msmtp, ssmtp, a relay's own): the message on its
//! standard input, its recipients in the headers, a time limit on the
//! mailer. No user is ever mailed from here.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the mailer may take before it is stopped.
const LIMIT: Duration = Duration::from_secs(60);

/// A plain-text message: `From` when given, `To` every address, the
/// subject on one line (line breaks in it would start new headers).
pub fn message(from: Option<&str>, to: &[String], subject: &str, body: &str) -> String {
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let mut out = String::new();
    if let Some(from) = from {
        out.push_str(&format!("From: {}\n", one_line(from)));
    }
    let to: Vec<String> = to.iter().map(|a| one_line(a)).collect();
    out.push_str(&format!("To: {}\n", to.join(", ")));
    out.push_str(&format!("Subject: {}\n", one_line(subject)));
    out.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n");
    out.push_str("Content-Transfer-Encoding: 8bit\n\n");
    out.push_str(body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Hands `message` to the mailer `argv`; why not, when it did not take it.
pub fn send_mail(argv: &[String], message: &str) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("[notify] sendmail names no program".into());
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not run {program} ([notify] sendmail): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(message.as_bytes())
            .map_err(|e| format!("{program} did not take the message: {e}"))?;
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{program} failed ({status}): {}", err.trim()));
            }
            Ok(None) if started.elapsed() > LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {} s; stopped", LIMIT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_cannot_add_headers() {
        let m = message(None, &["team@example.com".into()], "drill\nBcc: x@evil", "body");
        assert!(m.contains("Subject: drill Bcc: x@evil\n"), "{m}");
        assert!(!m.contains("\nBcc:"), "{m}");
        assert!(m.ends_with("\n\nbody\n"), "{m}");
    }
}
