//! A running `backstop flags serve` for the tests that talk to it over HTTP.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{poll_until, Project};

/// The token the tests' configs read from `SERVE_TOKEN`.
pub const TOKEN: &str = "s3cret-serve-token";

/// A running `backstop flags serve` on a free port; stopped with SIGTERM on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn start(p: &Project) -> Server {
        let server = Server::spawn(p, &[]);
        poll_until("serve is ready", 100, Duration::from_millis(100), || {
            server.get("/readyz", None).0 == 200
        });
        server
    }

    /// A server that is listening, whether or not it could read the flags;
    /// `env` is added to its environment.
    pub fn spawn(p: &Project, env: &[(&str, &str)]) -> Server {
        let mut child = p
            .std_cmd(&["serve", "--listen", "127.0.0.1:0"])
            .env("SERVE_TOKEN", TOKEN)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backstop serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("serve says where it listens").unwrap();
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().to_string();
            }
        };
        // Keep reading the logs so the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// The address, as `host:port`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    pub fn get(&self, path: &str, headers: Option<(&str, &str)>) -> (u16, String, Option<String>) {
        let mut req = Server::agent().get(format!("{}{path}", self.base));
        if let Some((k, v)) = headers {
            req = req.header(k, v);
        }
        Server::read(req.call().expect("the server answers"))
    }

    pub fn post(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Option<String>) {
        let mut req = Server::agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Server::read(req.send(body).expect("the server answers"))
    }

    pub fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, String, Option<String>) {
        let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, body, etag)
    }

    pub fn eval(&self, key: &str, context: Value) -> (u16, Value) {
        let (status, body, _) = self.post(
            &format!("/ofrep/v1/evaluate/flags/{key}"),
            &json!({ "context": context }).to_string(),
            &[],
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Opens the event stream and reads until it says it is connected.
    pub fn stream(&self) -> BufReader<TcpStream> {
        let addr = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /ofrep/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        read_until(&mut r, ": connected");
        r
    }
}

/// Reads lines from the stream until one contains `needle`; returns it.
pub fn read_until(r: &mut BufReader<TcpStream>, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("the stream stays open");
        assert!(n > 0, "the stream ended before {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
