//! A TCP proxy that stops dead part-way through a transfer: what a client
//! sees when the server it talks to is killed mid-upload.
//!
//! [`CutProxy`] listens on `127.0.0.1:<ephemeral port>` and pipes every
//! connection to an upstream server. Once the clients have sent it a set
//! number of bytes in all, it forwards no more: it shuts every connection
//! down and closes its listener, so requests in flight break off and new
//! ones are refused. The cut falls at a byte count, not at a time, so a
//! test can place it inside a transfer without racing it. With no limit it
//! only counts, which tells a test how many bytes a whole transfer sends.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A byte-counting proxy that cuts everything off after `cut_after` bytes
/// from its clients.
pub struct CutProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: SocketAddr,
    cut_after: Option<u64>,
    forwarded: AtomicU64,
    cut: AtomicBool,
    /// Every socket of every connection, to shut down at the cut.
    sockets: Mutex<Vec<TcpStream>>,
    addr: SocketAddr,
}

impl CutProxy {
    /// Listen and forward to `upstream`; cut after `cut_after` client bytes
    /// (never, for `None`).
    pub fn start(upstream: SocketAddr, cut_after: Option<u64>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            cut_after,
            forwarded: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            sockets: Mutex::new(Vec::new()),
            addr,
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.cut.load(Ordering::SeqCst) {
                    // The listener drops here: later connects are refused.
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || shared.serve(client));
            }
        });
        Ok(CutProxy { addr, shared })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes the clients have sent through so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Whether the cut has happened.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.cut_off();
    }
}

impl Shared {
    fn serve(self: Arc<Self>, client: TcpStream) {
        let Ok(server) = TcpStream::connect(self.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let (Ok(client_r), Ok(server_w), Ok(server_r), Ok(client_w)) = (
            client.try_clone(),
            server.try_clone(),
            server.try_clone(),
            client.try_clone(),
        ) else {
            return;
        };
        {
            let mut sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            if self.cut.load(Ordering::SeqCst) {
                return;
            }
            sockets.extend([client, server]);
        }
        // Answers flow back untouched.
        std::thread::spawn(move || pipe(server_r, client_w));
        self.upload(client_r, server_w);
    }

    /// Client to server, counting; at the limit, forward the bytes up to
    /// it and cut everything off.
    fn upload(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let before = self.forwarded.fetch_add(n as u64, Ordering::SeqCst);
            let allowed = match self.cut_after {
                Some(limit) => limit.saturating_sub(before).min(n as u64) as usize,
                None => n,
            };
            if to.write_all(&buf[..allowed]).is_err() {
                break;
            }
            if allowed < n {
                self.cut_off();
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    fn cut_off(&self) {
        if self.cut.swap(true, Ordering::SeqCst) {
            return;
        }
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees the cut and closes the listener.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_past_the_cut_never_arrive_and_later_connections_are_refused() {
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = upstream.local_addr().unwrap();
        let received = std::thread::spawn(move || {
            let (mut s, _) = upstream.accept().unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        let proxy = CutProxy::start(up, Some(10)).unwrap();
        let mut c = TcpStream::connect(proxy.addr).unwrap();
        c.write_all(b"0123456789abcdef").unwrap();
        let got = received.join().unwrap();
        assert_eq!(got, b"0123456789");
        assert!(proxy.is_cut());
        // The listener is gone once the accept loop has seen the cut.
        let refused = (0..200).any(|_| {
            std::thread::yield_now();
            TcpStream::connect(proxy.addr).is_err()
        });
        assert!(refused, "the proxy still accepts after its cut");
    }
}
