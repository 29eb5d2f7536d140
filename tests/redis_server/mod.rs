//! A Redis server for the tests that need one: `TOWER_FLEET_REDIS_URL`, or
//! a `redis-server` of the test's own on a free loopback port, killed on
//! drop. A test that needs Redis and can have neither fails saying so; it
//! never passes silently. (`.ci/run` installs `redis-server` when missing.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a starting server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A Redis server to run against.
pub struct RedisServer {
    /// Where it listens: `redis://127.0.0.1:PORT/`.
    pub url: String,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// `TOWER_FLEET_REDIS_URL` if set, else a server of our own.
    pub fn start() -> RedisServer {
        match std::env::var("TOWER_FLEET_REDIS_URL") {
            Ok(url) => RedisServer {
                url,
                port: 0,
                child: None,
            },
            Err(_) => Self::own(),
        }
    }

    /// A server of our own on a free loopback port, whatever the
    /// environment says (for tests that kill and restart it).
    pub fn own() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/"),
            port,
            child: None,
        };
        server.restart();
        server
    }

    /// Starts the server (again) on its port and returns once it logs that
    /// it accepts connections.
    pub fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs Redis: cannot start redis-server ({e}); install it \
                     (apt-get install redis-server) or set TOWER_FLEET_REDIS_URL"
                )
            });
        let stdout = child.stdout.take().expect("a piped stdout");
        self.child = Some(child);
        let (ready, is_ready) = mpsc::channel();
        // Reads the whole log, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        is_ready.recv_timeout(READY_WITHIN).unwrap_or_else(|_| {
            panic!(
                "redis-server on port {} was not ready within {READY_WITHIN:?}",
                self.port
            )
        });
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
