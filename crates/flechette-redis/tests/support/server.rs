//! A real `redis-server` on a free loopback port for tests, the guide test
//! and the backends bench (each includes this file by `#[path]`). It waits
//! for the server's "Ready to accept connections" log line, never a clock.

// Each includer uses a different part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// What to tell a user whose machine has no `redis-server`.
pub(crate) const INSTALL: &str =
    "install Debian's package with `apt-get install redis-server` (.ci/run does)";

/// A `redis-server` process, stopped when dropped.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// The server's log, kept open for as long as it runs.
    log: Option<Lines<BufReader<ChildStdout>>>,
}

impl RedisServer {
    /// Starts a server on a free port.
    ///
    /// # Panics
    ///
    /// When `redis-server` cannot run or exits before it is ready.
    pub(crate) fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a free port, or says why it could not.
    pub(crate) fn try_start() -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let mut server = Self {
            port,
            child: None,
            log: None,
        };
        server.try_restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server again on its port (after [`kill`](Self::kill)).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub(crate) fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_restart(&mut self) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): this needs a real Redis; {INSTALL}")
            })?;
        let stdout = child.stdout.take().ok_or("redis-server has no stdout")?;
        let mut log = BufReader::new(stdout).lines();
        let ready = log
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server exited before it was ready on port {}",
                self.port
            ));
        }
        self.child = Some(child);
        self.log = Some(log);
        Ok(())
    }

    /// Stops the server; the port stays this server's for a restart.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.log = None;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
