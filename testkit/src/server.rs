//! The server's runtime: accepting, one thread per connection, the shared
//! records, delays that a kill interrupts, and the kill itself.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{self, ReadError, Request};
use crate::{Behavior, Fault, Flavor};

/// Answers one request of a connection: the flavor's protocol (chosen in
/// lib.rs, so that the runtime knows no protocol).
pub(crate) type Handler = fn(&Shared, &TcpStream, &Request) -> std::io::Result<()>;

/// What a fault does to one request ("after" counts tokens, capped by the
/// number generated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Normal,
    Die { after: u32 },
    Stall { after: u32 },
    Garbage { after: u32 },
    Truncate { after: u32 },
    HttpError { status: u16 },
    NoText,
}

/// What every thread of one server shares.
pub(crate) struct Shared {
    pub flavor: Flavor,
    pub behavior: Behavior,
    addr: SocketAddr,
    handler: Handler,
    state: Mutex<State>,
    /// Notified on every change of `state` that someone may wait for: a
    /// request arriving, the listener closing, the kill.
    changed: Condvar,
}

#[derive(Default)]
pub(crate) struct State {
    /// A kill has begun: the acceptor takes no more connections.
    closing: bool,
    /// The listener is closed (set by the acceptor as it exits).
    listener_closed: bool,
    /// The kill is complete: connections are shut down, waits end.
    pub killed: bool,
    /// Open connections (clones of their sockets), so a kill can cut them.
    conns: BTreeMap<u64, TcpStream>,
    next_conn: u64,
    pub threads: Vec<JoinHandle<()>>,

    pub generation_requests: u32,
    pub bodies: Vec<serde_json::Value>,
    pub headers: Vec<Vec<(String, String)>>,
    pub log: Vec<String>,

    /// Ollama: the model has been loaded (used since start or last unload);
    /// only then does `/api/ps` list it.
    pub ollama_loaded: bool,
    /// Ollama: `options.num_ctx` of the request that loaded the model.
    pub ollama_num_ctx: Option<u64>,
}

/// One admitted generation request: its number and what happens to it.
pub(crate) struct Admission {
    pub index: u32,
    pub fate: Fate,
}

impl Shared {
    pub fn new(flavor: Flavor, behavior: Behavior, addr: SocketAddr, handler: Handler) -> Self {
        Shared {
            flavor,
            behavior,
            addr,
            handler,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// The state; a panicking connection thread must not take the records
    /// down with it, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Numbers and records a generation request and decides its fate.
    pub fn admit(&self, request: &Request) -> Admission {
        let body = serde_json::from_slice(&request.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&request.body).into_owned())
        });
        let mut state = self.lock();
        let index = state.generation_requests;
        state.generation_requests += 1;
        state.bodies.push(body);
        state.headers.push(request.headers.clone());
        drop(state);
        self.changed.notify_all();
        Admission {
            index,
            fate: fate_of(self.behavior.fault, index),
        }
    }

    pub fn wait_for_requests(&self, n: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.generation_requests < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.wait(state, deadline - now);
        }
        true
    }

    /// Waits `duration` (server behaviour: prefill, decode). Returns false,
    /// early, if the server is killed meanwhile: the caller stops.
    pub fn pause(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut state = self.lock();
        loop {
            if state.killed {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            state = self.wait(state, deadline - now);
        }
    }

    /// Waits until the server is killed (a stalled response).
    pub fn wait_until_killed(&self) {
        let mut state = self.lock();
        while !state.killed {
            state = self.wait(state, Duration::from_secs(3600));
        }
    }

    /// Kills the server. The order matters: the listener closes before any
    /// connection is cut, so a client that has seen its stream cut and then
    /// reconnects is refused rather than accepted by a dying server.
    pub fn kill(&self) {
        let mut state = self.lock();
        if state.closing {
            // Someone else is killing: wait for them to finish.
            while !state.killed {
                state = self.wait(state, Duration::from_millis(100));
            }
            return;
        }
        state.closing = true;
        // The acceptor is blocked in accept(), which std cannot interrupt: a
        // connection of our own wakes it, it sees `closing` and drops the
        // listener. Retried in case the wake-up connect was lost.
        while !state.listener_closed {
            drop(state);
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            state = self.lock();
            if !state.listener_closed {
                state = self.wait(state, Duration::from_millis(200));
            }
        }
        state.killed = true;
        for conn in state.conns.values() {
            let _ = conn.shutdown(Shutdown::Both);
        }
        drop(state);
        self.changed.notify_all();
    }
}

/// What the configured fault does to generation request `index`.
fn fate_of(fault: Option<Fault>, index: u32) -> Fate {
    match fault {
        Some(Fault::DieAfterRequests(n)) if index == n => Fate::Die { after: 2 },
        Some(Fault::StallAfterTokens { request, tokens }) if index == request => {
            Fate::Stall { after: tokens }
        }
        Some(Fault::Garbage { request }) if index == request => Fate::Garbage { after: 2 },
        Some(Fault::Truncated { request }) if index == request => Fate::Truncate { after: 2 },
        Some(Fault::HttpError { request, status }) if index == request => {
            Fate::HttpError { status }
        }
        Some(Fault::NoText { request }) if index == request => Fate::NoText,
        _ => Fate::Normal,
    }
}

/// Sets `listener_closed` when the acceptor ends, however it ends, so that
/// a kill never waits for an acceptor that is gone.
struct ListenerClosed<'a>(&'a Shared);

impl Drop for ListenerClosed<'_> {
    fn drop(&mut self) {
        self.0.lock().listener_closed = true;
        self.0.changed.notify_all();
    }
}

/// The acceptor thread: registers each connection (so a kill can cut it)
/// and serves it on a thread of its own, until a kill begins.
pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let _closed = ListenerClosed(&shared);
    for stream in listener.incoming() {
        let mut state = shared.lock();
        if state.closing {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = state.next_conn;
        state.next_conn += 1;
        state.conns.insert(id, clone);
        state.threads.retain(|t| !t.is_finished());
        drop(state);

        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("fake-server-conn".into())
            .spawn(move || serve_connection(&conn_shared, id, stream));
        match spawned {
            Ok(handle) => shared.lock().threads.push(handle),
            Err(_) => {
                shared.lock().conns.remove(&id);
            }
        }
    }
    // Dropping the listener here closes it: new connects are refused and
    // connections still in the backlog are reset.
    drop(listener);
}

/// Forgets a connection when its thread ends, however it ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.lock().conns.remove(&self.id);
    }
}

fn serve_connection(shared: &Shared, id: u64, stream: TcpStream) {
    let _registered = Registered { shared, id };
    // Each event must leave at once: Nagle's algorithm would hold small
    // writes back for up to a delayed-ACK period and distort latencies.
    let _ = stream.set_nodelay(true);

    match http::read_request(&stream) {
        Ok(request) => {
            shared
                .lock()
                .log
                .push(format!("{} {}", request.method, request.path));
            let _ = (shared.handler)(shared, &stream, &request);
        }
        Err(ReadError::Closed) => {}
        Err(ReadError::Malformed(message)) => {
            let body = serde_json::json!({"error": message}).to_string();
            let _ = http::write_whole(&stream, 400, "application/json", body.as_bytes());
        }
        Err(ReadError::TooLarge(status)) => {
            let _ = http::write_whole(
                &stream,
                status,
                "text/plain",
                http::reason(status).as_bytes(),
            );
        }
    }
    // Connection: close. A FIN after the response (or after a truncated
    // one); the socket itself closes when the last clone is dropped.
    let _ = stream.shutdown(Shutdown::Write);
}
