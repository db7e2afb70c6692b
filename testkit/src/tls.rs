//! An HTTPS front for the fake servers: [`TlsFront`] terminates TLS on
//! `127.0.0.1:<ephemeral port>` with a test certificate for 127.0.0.1 and
//! `localhost` (signed by a test CA, [`TEST_CA_PEM`]; `tls/make-certs.sh`
//! regenerates them) and passes each request to a plain upstream server,
//! streaming the answer back as it arrives, so that a client's timings
//! through it are still the upstream's.
//!
//! One request per connection, as the fake servers answer
//! (`Connection: close`): the request is read whole (headers, then
//! `Content-Length` bytes), sent upstream, and the upstream's bytes are
//! written back, each chunk flushed, until it closes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The test CA that signed the front's certificate (PEM): what a client
/// must trust (e.g. `SSL_CERT_FILE`) to reach a [`TlsFront`].
pub const TEST_CA_PEM: &str = include_str!("tls/ca.pem");
const SERVER_PEM: &str = include_str!("tls/server.pem");
const SERVER_KEY: &str = include_str!("tls/server.key");

/// An HTTPS listener in front of a plain HTTP server.
pub struct TlsFront {
    addr: SocketAddr,
}

impl TlsFront {
    /// Listen on 127.0.0.1 and pass requests to `upstream` (plain HTTP).
    pub fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let certs = CertificateDer::pem_slice_iter(SERVER_PEM.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        let key =
            PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).map_err(std::io::Error::other)?;
        // ring, as the client side uses (stages/measure's server client).
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(std::io::Error::other)?;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = serve(config, stream, upstream);
                });
            }
        });
        Ok(TlsFront { addr })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn serve(
    config: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    upstream: SocketAddr,
) -> std::io::Result<()> {
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let request = read_request(&mut tls)?;
    let mut plain = TcpStream::connect(upstream)?;
    plain.write_all(&request)?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = plain.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n])?;
        tls.flush()?;
    }
    tls.conn.send_close_notify();
    tls.flush()
}

/// One HTTP/1.1 request: the head, then as many body bytes as its
/// `Content-Length` says.
fn read_request(from: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&buf[..n]);
    }
    Ok(request)
}
