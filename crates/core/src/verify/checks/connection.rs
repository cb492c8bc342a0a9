//! `connection`: the database answers; which server it is and how long a
//! new session and one round trip take.

use std::time::{Duration, Instant};

use super::{db, session, Outcome};
use crate::verify::config::ConnectionCheck;
use crate::verify::VerifyError;

pub(crate) fn run(
    c: &ConnectionCheck,
    url: &str,
    timeout: Duration,
) -> Result<Outcome, VerifyError> {
    let started = Instant::now();
    let mut client = match session(url, timeout, true) {
        Ok(client) => client,
        Err(VerifyError::Connect(e)) => return Ok(Outcome::Fail(e.to_string())),
        Err(e) => return Err(e),
    };
    let connected = started.elapsed();
    let t = Instant::now();
    let row = client
        .query_one("select current_setting('server_version'), current_database()::text", &[])
        .map_err(db("asking the server its version"))?;
    let round_trip = t.elapsed();
    let version: String = row.get(0);
    let database: String = row.get(1);
    let detail = format!(
        "PostgreSQL {version}, database {database}: connected in {}, round trip {}",
        ms(connected),
        ms(round_trip)
    );
    Ok(match c.max_latency {
        Some(max) if connected + round_trip > max => {
            Outcome::Fail(format!("{detail}; slower than max_latency {}", ms(max)))
        }
        _ => Outcome::Pass(detail),
    })
}

fn ms(d: Duration) -> String {
    crate::kit::duration::human(d)
}
