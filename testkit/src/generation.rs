//! A generation's timeline and faults, shared by every flavor.
//!
//! The flavors differ only in how events are spelled (SSE chunks or NDJSON
//! lines, which fields); when tokens are sent, how long each takes and where
//! a fault cuts in is the same for all of them, and lives here.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use crate::http::{self, Chunked};
use crate::server::{Fate, Shared};

/// What a generation request asks for, once validated.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub prompt_tokens: u32,
    /// Tokens generated: the requested count, capped by `stop_early_at`.
    pub completion_tokens: u32,
    /// True when `stop_early_at` cut the output short (finish "stop").
    pub stopped_early: bool,
    pub stream: bool,
}

impl Plan {
    pub fn new(
        prompt_tokens: u32,
        requested: u32,
        stop_early_at: Option<u32>,
        stream: bool,
    ) -> Plan {
        let completion_tokens = stop_early_at.map_or(requested, |cap| cap.min(requested));
        Plan {
            prompt_tokens,
            completion_tokens,
            stopped_early: completion_tokens < requested,
            stream,
        }
    }

    /// The OpenAI `finish_reason` / Ollama `done_reason`.
    pub fn finish_reason(&self) -> &'static str {
        if self.stopped_early { "stop" } else { "length" }
    }

    /// Simulated prefill time: the configured first-token delay.
    pub fn prompt_time(&self, first_token_delay: Duration) -> Duration {
        first_token_delay
    }

    /// Simulated decode time: one token delay between consecutive tokens.
    pub fn predicted_time(&self, token_delay: Duration) -> Duration {
        token_delay * self.completion_tokens.saturating_sub(1)
    }
}

/// The text of token `i`.
pub(crate) fn token_text(i: u32) -> String {
    format!(" tok{i}")
}

/// The full text of `n` tokens.
pub(crate) fn full_text(n: u32) -> String {
    (0..n).map(token_text).collect()
}

/// How one flavor spells a generation's events. Each method returns the
/// exact bytes of one event (one HTTP chunk).
pub(crate) trait Encoder {
    /// `Content-Type` of the streamed response.
    fn stream_content_type(&self) -> &'static str;
    /// Events sent before the prefill (the chat role delta), if any.
    fn preamble(&self) -> Vec<Vec<u8>>;
    /// The event of token `i` (`last`: it is the final token), carrying
    /// its text unless `text` is false.
    fn token(&self, i: u32, last: bool, text: bool) -> Vec<u8>;
    /// The events after the last token (usage, `[DONE]`, `done: true`).
    fn finish(&self) -> Vec<Vec<u8>>;
    /// A malformed event (streamed).
    fn garbage_event(&self) -> &'static [u8];
    /// A malformed whole body (non-streamed).
    fn garbage_body(&self) -> &'static [u8];
    /// The whole (non-streamed) response body.
    fn whole(&self) -> serde_json::Value;
}

/// Answers an error in the flavor's shape (whole response).
pub(crate) fn respond_json(
    stream: &TcpStream,
    status: u16,
    body: &serde_json::Value,
) -> io::Result<()> {
    http::write_whole(
        stream,
        status,
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// Runs a generation to its end, or to where its fate cuts it.
/// `Fate::HttpError` is the flavor's business and handled before this.
pub(crate) fn run(
    shared: &Shared,
    stream: &TcpStream,
    plan: &Plan,
    fate: Fate,
    encoder: &dyn Encoder,
) -> io::Result<()> {
    if plan.stream {
        run_streamed(shared, stream, plan, fate, encoder)
    } else {
        run_whole(shared, stream, plan, fate, encoder)
    }
}

fn run_streamed(
    shared: &Shared,
    stream: &TcpStream,
    plan: &Plan,
    fate: Fate,
    encoder: &dyn Encoder,
) -> io::Result<()> {
    let n = plan.completion_tokens;
    let behavior = &shared.behavior;
    let mut out = Chunked::begin(stream, encoder.stream_content_type())?;
    for event in encoder.preamble() {
        out.chunk(&event)?;
    }
    // i = tokens sent so far; a fault fires when it reaches its point.
    for i in 0..=n {
        match fate {
            Fate::Die { after } if after.min(n) == i => {
                shared.kill();
                return Ok(());
            }
            Fate::Stall { after } if after.min(n) == i => {
                shared.wait_until_killed();
                return Ok(());
            }
            // Ends without the terminating chunk; the caller closes.
            Fate::Truncate { after } if after.min(n) == i => return Ok(()),
            Fate::Garbage { after } if after.min(n) == i => out.chunk(encoder.garbage_event())?,
            _ => {}
        }
        if i == n {
            break;
        }
        let delay = if i == 0 {
            behavior.first_token_delay
        } else {
            behavior.token_delay
        };
        if !shared.pause(delay) {
            return Ok(());
        }
        let last = i + 1 == n;
        if fate != Fate::NoText {
            out.chunk(&encoder.token(i, last, true))?;
        } else if last {
            out.chunk(&encoder.token(i, last, false))?;
        }
    }
    for event in encoder.finish() {
        out.chunk(&event)?;
    }
    out.finish()
}

fn run_whole(
    shared: &Shared,
    stream: &TcpStream,
    plan: &Plan,
    fate: Fate,
    encoder: &dyn Encoder,
) -> io::Result<()> {
    let behavior = &shared.behavior;
    match fate {
        Fate::Die { .. } => {
            shared.kill();
            return Ok(());
        }
        Fate::Stall { .. } => {
            shared.wait_until_killed();
            return Ok(());
        }
        _ => {}
    }
    let took =
        plan.prompt_time(behavior.first_token_delay) + plan.predicted_time(behavior.token_delay);
    if !shared.pause(took) {
        return Ok(());
    }
    match fate {
        Fate::Garbage { .. } => {
            http::write_whole(stream, 200, "application/json", encoder.garbage_body())
        }
        Fate::Truncate { .. } => {
            let body = encoder.whole().to_string();
            let mut bytes = http::whole_head(200, "application/json", body.len()).into_bytes();
            bytes.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
            let mut stream = stream;
            io::Write::write_all(&mut stream, &bytes)
        }
        _ => respond_json(stream, 200, &encoder.whole()),
    }
}
