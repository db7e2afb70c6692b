//! Incremental framing of streamed responses: Server-Sent Events (the
//! OpenAI-compatible servers) and newline-delimited JSON (Ollama). Bytes
//! arrive in network chunks that split events anywhere; the framer hands
//! out complete events only, and keeps every byte so a failed request can
//! be stored as it was received.

/// Most bytes kept per request for the run record.
pub const RAW_LIMIT: usize = 64 * 1024;

/// One complete frame of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// An SSE event's data (its `data:` lines joined by `\n`), or one NDJSON
    /// line.
    Data(String),
    /// The SSE end marker `data: [DONE]`.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    NdJson,
}

pub struct Framer {
    framing: Framing,
    /// Bytes not yet ending in a newline.
    pending: Vec<u8>,
    /// `data:` lines of the SSE event being read.
    data: Vec<String>,
    /// Everything received, up to [`RAW_LIMIT`].
    raw: Vec<u8>,
    truncated_raw: bool,
}

impl Framer {
    pub fn new(framing: Framing) -> Self {
        Framer {
            framing,
            pending: Vec::new(),
            data: Vec::new(),
            raw: Vec::new(),
            truncated_raw: false,
        }
    }

    /// Feed a network chunk; returns the frames it completed. Bytes that are
    /// not UTF-8 are an error (both framings are UTF-8 text).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, String> {
        let room = RAW_LIMIT.saturating_sub(self.raw.len());
        self.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.truncated_raw |= bytes.len() > room;
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = std::str::from_utf8(&line[..line.len() - 1])
                .map_err(|e| format!("stream is not UTF-8: {e}"))?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            match self.framing {
                Framing::NdJson => {
                    if !line.trim().is_empty() {
                        frames.push(Frame::Data(line.to_string()));
                    }
                }
                Framing::Sse => self.sse_line(line, &mut frames),
            }
        }
        Ok(frames)
    }

    fn sse_line(&mut self, line: &str, frames: &mut Vec<Frame>) {
        if line.is_empty() {
            // A blank line dispatches the event.
            if !self.data.is_empty() {
                let data = std::mem::take(&mut self.data).join("\n");
                frames.push(if data.trim() == "[DONE]" {
                    Frame::Done
                } else {
                    Frame::Data(data)
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
        }
        // `event`, `id`, `retry`: not used by the servers measured.
    }

    /// Bytes left over at the end of the stream that never formed a frame
    /// (a truncated event).
    pub fn leftover(&self) -> bool {
        !self.pending.iter().all(u8::is_ascii_whitespace) || !self.data.is_empty()
    }

    /// The bytes received, as text for the run record (lossy UTF-8, marked
    /// when cut at [`RAW_LIMIT`]).
    pub fn raw_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.raw).into_owned();
        if self.truncated_raw {
            text.push_str("\n[... cut at 64 KiB]");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_anywhere_are_reassembled() {
        let stream =
            b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\ndata: 2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut f = Framer::new(Framing::Sse);
            let mut frames = f.push(&stream[..cut]).unwrap();
            frames.extend(f.push(&stream[cut..]).unwrap());
            assert_eq!(
                frames,
                [
                    Frame::Data("{\"a\":1}".into()),
                    Frame::Data("{\"b\":\n2}".into()),
                    Frame::Done
                ],
                "cut at {cut}"
            );
            assert!(!f.leftover());
        }
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut f = Framer::new(Framing::Sse);
        let frames = f.push(b"data: one\ndata: two\n\n").unwrap();
        assert_eq!(frames, [Frame::Data("one\ntwo".into())]);
    }

    #[test]
    fn ndjson_lines_and_truncation() {
        let mut f = Framer::new(Framing::NdJson);
        let frames = f.push(b"{\"x\":1}\n\n{\"y\"").unwrap();
        assert_eq!(frames, [Frame::Data("{\"x\":1}".into())]);
        assert!(f.leftover());
        assert_eq!(f.raw_text(), "{\"x\":1}\n\n{\"y\"");
    }

    #[test]
    fn an_unfinished_sse_event_is_leftover() {
        let mut f = Framer::new(Framing::Sse);
        assert!(f.push(b"data: {\"a\":1}\n").unwrap().is_empty());
        assert!(f.leftover());
    }

    #[test]
    fn raw_bytes_are_capped() {
        let mut f = Framer::new(Framing::NdJson);
        f.push(&vec![b'a'; RAW_LIMIT + 10]).unwrap();
        assert!(f.raw_text().ends_with("[... cut at 64 KiB]"));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut f = Framer::new(Framing::NdJson);
        assert!(f.push(b"\xff\xfe\n").is_err());
    }
}
