//! llama.cpp's `llama-server`, launched by assay for one cell: on
//! 127.0.0.1, on a free port, serving the model's GGUF export, killed when
//! the cell ends (also on error and Ctrl-C: the child is killed on drop).
//! Start to `/health` answering 200 is the cell's `load` phase.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use assay_core::config::server::LaunchOptions;

/// The environment variable naming the llama-server binary.
pub const SERVER_ENV: &str = "ASSAY_LLAMA_SERVER";

/// The binary: `$ASSAY_LLAMA_SERVER`, else `llama-server` on the PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(SERVER_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("llama-server"))
            .find(|p| p.is_file())
    })
}

/// `llama-server --version`'s first line, e.g. `version: 1 (0c1e570)`;
/// asked once per binary per process.
pub fn version(binary: &Path) -> Result<String, String> {
    static SEEN: OnceLock<Mutex<Vec<(PathBuf, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, v)) = seen
        .lock()
        .ok()
        .and_then(|s| s.iter().find(|(p, _)| p == binary).cloned())
    {
        return Ok(v);
    }
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", binary.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("version:"))
        .map(|l| l.trim().to_string())
        .ok_or_else(|| {
            format!(
                "{} --version printed no version line: {}",
                binary.display(),
                text.trim()
            )
        })?;
    if let Ok(mut s) = seen.lock() {
        s.push((binary.to_path_buf(), line.clone()));
    }
    Ok(line)
}

/// A running llama-server. Dropping it kills the process.
pub struct LaunchedServer {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Drop for LaunchedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What to serve and how.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub gguf: &'a Path,
    /// The name the server answers to (`--alias`).
    pub alias: &'a str,
    pub threads: u32,
    pub ctx_size: u32,
    pub opts: &'a LaunchOptions,
}

impl LaunchedServer {
    /// Starts the server and waits until `/health` answers 200, the
    /// process exits (an error with the end of its log) or the ready
    /// timeout passes. `cancelled` is polled while waiting.
    pub fn start(l: &Launch<'_>, cancelled: &dyn Fn() -> bool) -> Result<LaunchedServer, String> {
        let port = free_port().map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
        let log = std::env::temp_dir().join(format!(
            "assay-llama-server-{}-{port}.log",
            std::process::id()
        ));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(l.binary);
        cmd.arg("--model")
            .arg(l.gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--alias", l.alias])
            .args(["--threads", &l.threads.to_string()])
            .args(["--threads-batch", &l.threads.to_string()])
            .args(["--ctx-size", &l.ctx_size.to_string()])
            .args(["--parallel", &l.opts.parallel.to_string()])
            .arg("--no-webui")
            .args(&l.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log_file
                    .try_clone()
                    .map_err(|e| format!("{}: {e}", log.display()))?,
            ))
            .stderr(Stdio::from(log_file));
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", l.binary.display()))?;
        let mut server = LaunchedServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs_f64(l.opts.ready_timeout_s);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "llama-server exited ({status}) before it was ready; its log ends:\n{}",
                    server.log_tail()
                ));
            }
            if health(port) {
                return Ok(server);
            }
            if cancelled() {
                return Err("cancelled".into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "llama-server not ready within {} s; its log ends:\n{}",
                    l.opts.ready_timeout_s,
                    server.log_tail()
                ));
            }
            // Polling a child process's readiness: there is no event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A port the OS says is free now. Another process could take it before
/// the server binds it; the server then exits and the start fails with its
/// log, which says so.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET /health` answered 200 (llama-server answers 503 while loading).
fn health(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
