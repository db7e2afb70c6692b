//! The fake servers, driven by a tiny blocking HTTP/1.1 client (std only)
//! that sees the exact bytes, chunk by chunk.

use std::io::ErrorKind;
use std::time::Duration;

use assay_testkit::{
    Behavior, FakeServer, Fault, Flavor, OLLAMA_COLD_LOAD_NS, OLLAMA_DIGEST, OLLAMA_MODEL_SIZE,
    OLLAMA_WARM_LOAD_NS,
};
use client::Exchange;
use serde_json::{Value, json};

/// A blocking client that exposes the response's framing.
mod client {
    use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    /// One request/response on its own connection.
    pub struct Exchange {
        reader: BufReader<TcpStream>,
        pub status: u16,
        /// Lower-cased names.
        pub headers: Vec<(String, String)>,
    }

    impl Exchange {
        /// Sends a request (a JSON body if given) and reads the response head.
        pub fn open(port: u16, method: &str, path: &str, body: Option<&str>) -> io::Result<Self> {
            Self::open_with(port, method, path, body, &[])
        }

        pub fn open_with(
            port: u16,
            method: &str,
            path: &str,
            body: Option<&str>,
            headers: &[(&str, &str)],
        ) -> io::Result<Self> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
            for (name, value) in headers {
                head += &format!("{name}: {value}\r\n");
            }
            if let Some(body) = body {
                head += &format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    body.len()
                );
            }
            head += "\r\n";
            stream.write_all(head.as_bytes())?;
            stream.write_all(body.unwrap_or_default().as_bytes())?;

            let mut reader = BufReader::new(stream);
            let status_line = line(&mut reader)?;
            let status = status_line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
            let mut headers = Vec::new();
            loop {
                let line = line(&mut reader)?;
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').expect("header line");
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
            Ok(Exchange {
                reader,
                status,
                headers,
            })
        }

        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        pub fn set_read_timeout(&self, timeout: Duration) {
            self.reader
                .get_ref()
                .set_read_timeout(Some(timeout))
                .unwrap();
        }

        /// The next chunk of a chunked body; `None` at the terminating
        /// chunk; an `UnexpectedEof` error if the connection ends first.
        pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
            assert_eq!(self.header("transfer-encoding"), Some("chunked"));
            let size_line = line(&mut self.reader)?;
            let size = usize::from_str_radix(&size_line, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {size_line:?}")))?;
            let mut data = vec![0; size];
            self.reader.read_exact(&mut data)?;
            let mut crlf = [0; 2];
            self.reader.read_exact(&mut crlf)?;
            assert_eq!(&crlf, b"\r\n", "chunk must end with CRLF");
            Ok((size > 0).then_some(data))
        }

        /// Every chunk up to the terminator; the connection must then close.
        pub fn all_chunks(&mut self) -> io::Result<Vec<Vec<u8>>> {
            let mut chunks = Vec::new();
            while let Some(chunk) = self.next_chunk()? {
                chunks.push(chunk);
            }
            self.expect_eof();
            Ok(chunks)
        }

        /// A `Content-Length` body, read exactly.
        pub fn whole_body(mut self) -> io::Result<Vec<u8>> {
            let len: usize = self
                .header("content-length")
                .expect("a whole response has a Content-Length")
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body)?;
            self.expect_eof();
            Ok(body)
        }

        pub fn json(self) -> Value {
            assert_eq!(self.header("content-type"), Some("application/json"));
            serde_json::from_slice(&self.whole_body().unwrap()).unwrap()
        }

        /// The server closed the connection (Connection: close).
        pub fn expect_eof(&mut self) {
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "bytes after the response: {rest:?}");
        }
    }

    use serde_json::Value;

    /// A CRLF-terminated line without the CRLF; EOF first is an error.
    fn line(reader: &mut impl BufRead) -> io::Result<String> {
        let mut buf = String::new();
        if reader.read_line(&mut buf)? == 0 || !buf.ends_with("\r\n") {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.truncate(buf.len() - 2);
        Ok(buf)
    }

    /// GET, expecting a whole JSON response.
    pub fn get_json(port: u16, path: &str) -> (u16, Value) {
        let exchange = Exchange::open(port, "GET", path, None).unwrap();
        let status = exchange.status;
        (status, exchange.json())
    }

    /// POST, expecting a whole JSON response.
    pub fn post_json(port: u16, path: &str, body: &Value) -> (u16, Value) {
        let exchange = Exchange::open(port, "POST", path, Some(&body.to_string())).unwrap();
        let status = exchange.status;
        (status, exchange.json())
    }
}

fn start(flavor: Flavor) -> FakeServer {
    FakeServer::start(flavor, Behavior::default()).unwrap()
}

fn start_with(flavor: Flavor, behavior: Behavior) -> FakeServer {
    FakeServer::start(flavor, behavior).unwrap()
}

/// The JSON of one SSE event chunk (`data: <json>\n\n`).
fn sse_json(chunk: &[u8]) -> Value {
    let text = std::str::from_utf8(chunk).unwrap();
    let json = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("not one SSE event: {text:?}"));
    serde_json::from_str(json).unwrap()
}

/// The JSON of one NDJSON line chunk.
fn ndjson(chunk: &[u8]) -> Value {
    let text = std::str::from_utf8(chunk).unwrap();
    let json = text
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("not one line: {text:?}"));
    assert!(!json.contains('\n'));
    serde_json::from_str(json).unwrap()
}

fn completion_request(max_tokens: u32, stream: bool) -> String {
    json!({
        "model": "fake-model",
        "prompt": [1, 2, 3, 4, 5, 6, 7],
        "max_tokens": max_tokens,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "ignore_eos": true,
    })
    .to_string()
}

fn open_completion(server: &FakeServer, max_tokens: u32) -> Exchange {
    let body = completion_request(max_tokens, true);
    let exchange = Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    assert_eq!(exchange.status, 200);
    exchange
}

fn is_connection_refused(port: u16) -> bool {
    matches!(
        std::net::TcpStream::connect(("127.0.0.1", port)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

// --- OpenAI-compatible -------------------------------------------------------

#[test]
fn streamed_completion_has_one_event_per_token_then_usage_and_done() {
    let server = start(Flavor::OpenAi);
    let mut exchange = open_completion(&server, 5);
    assert_eq!(exchange.header("content-type"), Some("text/event-stream"));
    assert_eq!(exchange.header("connection"), Some("close"));
    let chunks = exchange.all_chunks().unwrap();
    assert_eq!(chunks.len(), 5 + 2, "5 tokens, usage, [DONE]");

    for (i, chunk) in chunks[..5].iter().enumerate() {
        let event = sse_json(chunk);
        assert_eq!(event["object"], "text_completion");
        assert_eq!(event["model"], "fake-model");
        assert_eq!(event["choices"][0]["text"], format!(" tok{i}"));
        let expected_finish = if i == 4 { json!("length") } else { json!(null) };
        assert_eq!(event["choices"][0]["finish_reason"], expected_finish);
        assert!(event.get("timings").is_none());
    }
    let usage = sse_json(&chunks[5]);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12})
    );
    assert!(
        usage.get("timings").is_none(),
        "no timings from a plain OpenAI server"
    );
    assert_eq!(chunks[6], b"data: [DONE]\n\n");
    assert_eq!(server.requests_seen(), 1);
}

#[test]
fn usage_chunk_only_when_asked_for() {
    let server = start(Flavor::OpenAi);
    let body = json!({"prompt": "a b c", "max_tokens": 3, "stream": true}).to_string();
    let mut exchange =
        Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    let chunks = exchange.all_chunks().unwrap();
    assert_eq!(chunks.len(), 3 + 1);
    assert_eq!(
        sse_json(&chunks[2])["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(chunks[3], b"data: [DONE]\n\n");
}

#[test]
fn chat_stream_opens_with_a_role_only_delta() {
    let server = start(Flavor::OpenAi);
    let body = json!({
        "model": "fake-model",
        "messages": [{"role": "user", "content": "one two three four"}],
        "max_completion_tokens": 3,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string();
    let mut exchange =
        Exchange::open(server.port(), "POST", "/v1/chat/completions", Some(&body)).unwrap();
    let chunks = exchange.all_chunks().unwrap();
    assert_eq!(chunks.len(), 1 + 3 + 2, "role, 3 tokens, usage, [DONE]");

    let role = sse_json(&chunks[0]);
    assert_eq!(role["object"], "chat.completion.chunk");
    assert_eq!(role["choices"][0]["delta"], json!({"role": "assistant"}));
    assert_eq!(role["choices"][0]["finish_reason"], json!(null));
    for (i, chunk) in chunks[1..4].iter().enumerate() {
        let event = sse_json(chunk);
        assert_eq!(event["id"], "chatcmpl-1");
        assert_eq!(
            event["choices"][0]["delta"],
            json!({"content": format!(" tok{i}")})
        );
    }
    assert_eq!(
        sse_json(&chunks[3])["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(sse_json(&chunks[4])["usage"]["prompt_tokens"], 4);
    assert_eq!(sse_json(&chunks[4])["object"], "chat.completion.chunk");
}

#[test]
fn llama_cpp_puts_timings_on_the_final_chunk() {
    let behavior = Behavior {
        token_delay: Duration::from_millis(2),
        first_token_delay: Duration::from_millis(8),
        ..Behavior::default()
    };
    let server = start_with(Flavor::LlamaCpp, behavior);

    // With usage: on the usage chunk only.
    let mut exchange = open_completion(&server, 5);
    let chunks = exchange.all_chunks().unwrap();
    assert!(
        chunks[..5]
            .iter()
            .all(|c| sse_json(c).get("timings").is_none())
    );
    let timings = &sse_json(&chunks[5])["timings"];
    assert_eq!(timings["prompt_n"], 7);
    assert_eq!(timings["prompt_ms"], 8.0);
    assert_eq!(timings["predicted_n"], 5);
    assert_eq!(timings["predicted_ms"], 8.0, "(5 - 1) tokens * 2 ms");
    assert_eq!(timings["predicted_per_second"], 625.0);
    assert_eq!(timings["predicted_per_token_ms"], 1.6);
    assert_eq!(timings["prompt_per_token_ms"], 8.0 / 7.0);
    assert_eq!(timings["prompt_per_second"], 7000.0 / 8.0);

    // Without usage: on the last token's chunk.
    let body = json!({"prompt": "x", "max_tokens": 2, "stream": true}).to_string();
    let mut exchange =
        Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    let chunks = exchange.all_chunks().unwrap();
    assert!(sse_json(&chunks[0]).get("timings").is_none());
    assert_eq!(sse_json(&chunks[1])["timings"]["predicted_n"], 2);
    assert_eq!(chunks[2], b"data: [DONE]\n\n");
}

#[test]
fn non_streamed_responses_are_whole() {
    let server = start(Flavor::LlamaCpp);
    let (status, body) = client::post_json(
        server.port(),
        "/v1/completions",
        &json!({"prompt": "a b c d e", "max_tokens": 3}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], " tok0 tok1 tok2");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["timings"]["predicted_n"], 3);

    let (status, body) = client::post_json(
        server.port(),
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "hi there"}], "max_tokens": 2, "stream": false}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": " tok0 tok1"})
    );
    assert_eq!(body["usage"]["total_tokens"], 4);
}

#[test]
fn stop_early_finishes_with_stop() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            stop_early_at: Some(2),
            ..Behavior::default()
        },
    );
    let mut exchange = open_completion(&server, 10);
    let chunks = exchange.all_chunks().unwrap();
    assert_eq!(chunks.len(), 2 + 2);
    assert_eq!(sse_json(&chunks[1])["choices"][0]["finish_reason"], "stop");
    assert_eq!(sse_json(&chunks[2])["usage"]["completion_tokens"], 2);
}

#[test]
fn service_endpoints() {
    let llama = start(Flavor::LlamaCpp);
    assert_eq!(
        client::get_json(llama.port(), "/health"),
        (200, json!({"status": "ok"}))
    );
    let (status, models) = client::get_json(llama.port(), "/v1/models");
    assert_eq!(status, 200);
    assert_eq!(models["data"][0]["id"], "fake-model");
    let (status, props) = client::get_json(llama.port(), "/props");
    assert_eq!(status, 200);
    assert_eq!(props["default_generation_settings"]["n_ctx"], 4096);
    assert_eq!(props["build_info"], "b0-fake");

    let plain = start(Flavor::OpenAi);
    let (status, error) = client::get_json(plain.port(), "/props");
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "not_found_error");
    assert_eq!(plain.requests_seen(), 0);
    assert_eq!(plain.request_log(), ["GET /props"]);
}

#[test]
fn malformed_json_is_a_400_and_still_counts() {
    let server = start(Flavor::OpenAi);
    let exchange =
        Exchange::open(server.port(), "POST", "/v1/completions", Some("{not json")).unwrap();
    assert_eq!(exchange.status, 400);
    let error = exchange.json();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].is_string());
    assert_eq!(server.requests_seen(), 1);
    assert_eq!(server.bodies(), [json!("{not json")]);
}

#[test]
fn bodies_and_headers_record_what_the_client_sent() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            api_key: Some("sekrit".into()),
            ..Behavior::default()
        },
    );
    let body = completion_request(2, false);
    let denied = Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["type"], "authentication_error");

    let allowed = Exchange::open_with(
        server.port(),
        "POST",
        "/v1/completions",
        Some(&body),
        &[("Authorization", "Bearer sekrit")],
    )
    .unwrap();
    assert_eq!(allowed.status, 200);
    allowed.json();

    assert_eq!(server.requests_seen(), 2);
    let bodies = server.bodies();
    assert_eq!(bodies[1]["max_tokens"], 2);
    assert_eq!(bodies[1]["ignore_eos"], true);
    assert_eq!(bodies[1]["prompt"], json!([1, 2, 3, 4, 5, 6, 7]));
    let headers = server.headers();
    let auth = |i: usize| {
        headers[i]
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(auth(0), None);
    assert_eq!(auth(1).as_deref(), Some("Bearer sekrit"));
    // /health stays public.
    assert_eq!(client::get_json(server.port(), "/health").0, 200);
}

// --- Faults ------------------------------------------------------------------

#[test]
fn kill_refuses_new_connections_and_cuts_an_open_stream() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            token_delay: Duration::from_millis(20),
            ..Behavior::default()
        },
    );
    // 1000 tokens at 20 ms: the stream cannot end on its own during the test.
    let mut exchange = open_completion(&server, 1000);
    let first = exchange.next_chunk().unwrap().unwrap();
    assert_eq!(sse_json(&first)["choices"][0]["text"], " tok0");

    server.kill();
    assert!(server.is_dead());
    assert!(is_connection_refused(server.port()));
    let cut = loop {
        match exchange.next_chunk() {
            Ok(Some(_)) => continue, // a token already in flight
            Ok(None) => panic!("the stream ended normally"),
            Err(e) => break e,
        }
    };
    assert_eq!(cut.kind(), ErrorKind::UnexpectedEof);
    server.kill(); // idempotent
}

#[test]
fn die_after_requests_cuts_the_next_stream_and_closes_the_listener() {
    let server = start_with(
        Flavor::LlamaCpp,
        Behavior {
            fault: Some(Fault::DieAfterRequests(1)),
            ..Behavior::default()
        },
    );
    let mut exchange = open_completion(&server, 5);
    assert_eq!(exchange.all_chunks().unwrap().len(), 7);

    let mut exchange = open_completion(&server, 5);
    assert_eq!(
        sse_json(&exchange.next_chunk().unwrap().unwrap())["choices"][0]["text"],
        " tok0"
    );
    assert_eq!(
        sse_json(&exchange.next_chunk().unwrap().unwrap())["choices"][0]["text"],
        " tok1"
    );
    assert_eq!(
        exchange.next_chunk().unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    // The listener closed before the stream was cut.
    assert!(server.is_dead());
    assert!(is_connection_refused(server.port()));
    assert_eq!(server.requests_seen(), 2);
}

#[test]
fn stall_keeps_the_connection_open_and_silent_until_kill() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            fault: Some(Fault::StallAfterTokens {
                request: 0,
                tokens: 3,
            }),
            ..Behavior::default()
        },
    );
    let mut exchange = open_completion(&server, 10);
    for i in 0..3 {
        let event = sse_json(&exchange.next_chunk().unwrap().unwrap());
        assert_eq!(event["choices"][0]["text"], format!(" tok{i}"));
    }
    exchange.set_read_timeout(Duration::from_millis(300));
    let silence = exchange.next_chunk().unwrap_err();
    assert!(
        matches!(silence.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{silence:?}"
    );

    // Other requests are unaffected meanwhile.
    let mut other = open_completion(&server, 2);
    assert_eq!(other.all_chunks().unwrap().len(), 4);

    server.kill();
    exchange.set_read_timeout(Duration::from_secs(10));
    assert_eq!(
        exchange.next_chunk().unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn stalled_non_streamed_request_gets_no_response_and_drop_ends_it() {
    let server = start_with(
        Flavor::Ollama,
        Behavior {
            fault: Some(Fault::StallAfterTokens {
                request: 0,
                tokens: 0,
            }),
            ..Behavior::default()
        },
    );
    let port = server.port();
    let body = json!({"model": "fake-model", "prompt": "hi", "stream": false}).to_string();
    let opened =
        std::thread::spawn(move || Exchange::open(port, "POST", "/api/generate", Some(&body)));
    assert!(server.wait_for_requests(1, Duration::from_secs(10)));
    drop(server); // must not hang on the stalled connection
    let error = opened.join().unwrap().err().expect("no response");
    assert_eq!(error.kind(), ErrorKind::UnexpectedEof);
}

#[test]
fn garbage_event_is_not_json_and_the_stream_goes_on() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            fault: Some(Fault::Garbage { request: 1 }),
            ..Behavior::default()
        },
    );
    assert_eq!(open_completion(&server, 4).all_chunks().unwrap().len(), 6);

    let chunks = open_completion(&server, 4).all_chunks().unwrap();
    assert_eq!(chunks.len(), 4 + 1 + 2);
    assert_eq!(sse_json(&chunks[1])["choices"][0]["text"], " tok1");
    assert_eq!(chunks[2], b"data: {\"choices\": [garbage\n\n");
    assert_eq!(sse_json(&chunks[3])["choices"][0]["text"], " tok2");
    assert_eq!(chunks[6], b"data: [DONE]\n\n");
}

#[test]
fn truncated_stream_ends_after_two_tokens_without_terminator() {
    let server = start_with(
        Flavor::LlamaCpp,
        Behavior {
            fault: Some(Fault::Truncated { request: 0 }),
            ..Behavior::default()
        },
    );
    let mut exchange = open_completion(&server, 8);
    assert_eq!(
        sse_json(&exchange.next_chunk().unwrap().unwrap())["choices"][0]["text"],
        " tok0"
    );
    assert_eq!(
        sse_json(&exchange.next_chunk().unwrap().unwrap())["choices"][0]["text"],
        " tok1"
    );
    assert_eq!(
        exchange.next_chunk().unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
    // The server lives on.
    assert!(!server.is_dead());
    assert_eq!(open_completion(&server, 2).all_chunks().unwrap().len(), 4);
}

#[test]
fn a_no_text_stream_is_one_empty_final_event_counting_every_token() {
    let server = start_with(
        Flavor::LlamaCpp,
        Behavior {
            fault: Some(Fault::NoText { request: 0 }),
            ..Behavior::default()
        },
    );
    let chunks = open_completion(&server, 4).all_chunks().unwrap();
    // The last token's event, the usage event, [DONE].
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    let last = sse_json(&chunks[0]);
    assert_eq!(last["choices"][0]["text"], "");
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(sse_json(&chunks[1])["usage"]["completion_tokens"], 4);
    assert_eq!(chunks[2], b"data: [DONE]\n\n");
    // Only that request.
    assert_eq!(open_completion(&server, 4).all_chunks().unwrap().len(), 6);
}

#[test]
fn truncated_whole_response_is_shorter_than_its_content_length() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            fault: Some(Fault::Truncated { request: 0 }),
            ..Behavior::default()
        },
    );
    let body = completion_request(4, false);
    let exchange = Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    assert_eq!(exchange.status, 200);
    assert_eq!(
        exchange.whole_body().unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );
}

#[test]
fn http_error_fault_answers_the_status_with_an_error_body() {
    let server = start_with(
        Flavor::OpenAi,
        Behavior {
            fault: Some(Fault::HttpError {
                request: 0,
                status: 503,
            }),
            ..Behavior::default()
        },
    );
    let body = completion_request(4, true);
    let exchange = Exchange::open(server.port(), "POST", "/v1/completions", Some(&body)).unwrap();
    assert_eq!(exchange.status, 503);
    let error = exchange.json();
    assert_eq!(error["error"]["type"], "unavailable_error");
    assert_eq!(error["error"]["code"], 503);
    assert!(error["error"]["message"].is_string());
    assert_eq!(open_completion(&server, 1).all_chunks().unwrap().len(), 3);
}

// --- Ollama ------------------------------------------------------------------

fn ollama_generate(server: &FakeServer, num_predict: u32) -> Vec<Value> {
    let body = json!({
        "model": "fake-model",
        "prompt": "why is the sky blue",
        "raw": true,
        "options": {"num_predict": num_predict},
    })
    .to_string();
    let mut exchange = Exchange::open(server.port(), "POST", "/api/generate", Some(&body)).unwrap();
    assert_eq!(exchange.status, 200);
    assert_eq!(
        exchange.header("content-type"),
        Some("application/x-ndjson")
    );
    exchange
        .all_chunks()
        .unwrap()
        .iter()
        .map(|c| ndjson(c))
        .collect()
}

#[test]
fn ollama_generate_streams_lines_then_done_with_counts() {
    let server = start_with(
        Flavor::Ollama,
        Behavior {
            token_delay: Duration::from_millis(2),
            first_token_delay: Duration::from_millis(3),
            ..Behavior::default()
        },
    );
    let lines = ollama_generate(&server, 4);
    assert_eq!(lines.len(), 5);
    for (i, line) in lines[..4].iter().enumerate() {
        assert_eq!(
            *line,
            json!({"model": "fake-model", "created_at": "2026-01-01T00:00:00Z",
                   "response": format!(" tok{i}"), "done": false})
        );
    }
    let done = &lines[4];
    assert_eq!(done["done"], true);
    assert_eq!(done["response"], "");
    assert_eq!(done["done_reason"], "length");
    assert_eq!(done["context"], json!([1, 2, 3]));
    assert_eq!(done["prompt_eval_count"], 5);
    assert_eq!(done["eval_count"], 4);
    assert_eq!(done["prompt_eval_duration"], 3_000_000);
    assert_eq!(done["eval_duration"], 6_000_000);
    assert_eq!(done["load_duration"], OLLAMA_COLD_LOAD_NS);
    assert_eq!(done["total_duration"], OLLAMA_COLD_LOAD_NS + 9_000_000);

    let again = ollama_generate(&server, 2);
    assert_eq!(again.last().unwrap()["load_duration"], OLLAMA_WARM_LOAD_NS);
}

#[test]
fn ollama_ps_lists_the_model_only_once_used() {
    let server = start_with(
        Flavor::Ollama,
        Behavior {
            ollama_size_vram: Some(1_000),
            ..Behavior::default()
        },
    );
    assert_eq!(
        client::get_json(server.port(), "/api/ps"),
        (200, json!({"models": []}))
    );
    ollama_generate(&server, 1);
    let (status, ps) = client::get_json(server.port(), "/api/ps");
    assert_eq!(status, 200);
    let model = &ps["models"][0];
    assert_eq!(model["name"], "fake-model:latest");
    assert_eq!(model["model"], "fake-model:latest");
    assert_eq!(model["size"], OLLAMA_MODEL_SIZE);
    assert_eq!(model["size_vram"], 1_000);
    assert_eq!(model["digest"], OLLAMA_DIGEST);
    assert_eq!(model["details"]["quantization_level"], "Q4_K_M");
    assert_eq!(model["expires_at"], "2026-01-01T00:00:00Z");

    // keep_alive 0 with no prompt unloads it.
    let (status, unload) = client::post_json(
        server.port(),
        "/api/generate",
        &json!({"model": "fake-model:latest", "keep_alive": 0}),
    );
    assert_eq!(status, 200);
    assert_eq!(unload["done_reason"], "unload");
    assert_eq!(
        client::get_json(server.port(), "/api/ps").1,
        json!({"models": []})
    );
}

#[test]
fn ollama_empty_prompt_loads_the_model() {
    let server = start(Flavor::Ollama);
    let (status, load) = client::post_json(
        server.port(),
        "/api/generate",
        &json!({"model": "fake-model"}),
    );
    assert_eq!(status, 200);
    assert_eq!(
        load,
        json!({"model": "fake-model", "created_at": "2026-01-01T00:00:00Z",
               "response": "", "done": true, "done_reason": "load"})
    );
    assert_eq!(
        client::get_json(server.port(), "/api/ps").1["models"][0]["size_vram"],
        OLLAMA_MODEL_SIZE
    );
    let lines = ollama_generate(&server, 1);
    assert_eq!(
        lines[1]["load_duration"], OLLAMA_WARM_LOAD_NS,
        "already loaded"
    );
}

#[test]
fn ollama_chat_lines_carry_messages() {
    let server = start(Flavor::Ollama);
    let body = json!({
        "model": "fake-model",
        "messages": [{"role": "user", "content": "a b c"}],
        "options": {"num_predict": 2},
    })
    .to_string();
    let mut exchange = Exchange::open(server.port(), "POST", "/api/chat", Some(&body)).unwrap();
    let lines: Vec<Value> = exchange
        .all_chunks()
        .unwrap()
        .iter()
        .map(|c| ndjson(c))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["message"],
        json!({"role": "assistant", "content": " tok0"})
    );
    assert_eq!(lines[0]["done"], false);
    assert!(lines[0].get("response").is_none());
    assert_eq!(
        lines[2]["message"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(lines[2]["done"], true);
    assert_eq!(lines[2]["prompt_eval_count"], 3);
    assert_eq!(lines[2]["eval_count"], 2);
    assert!(lines[2].get("context").is_none());
}

#[test]
fn ollama_non_streamed_and_defaults() {
    let server = start_with(
        Flavor::Ollama,
        Behavior {
            stop_early_at: Some(5),
            ..Behavior::default()
        },
    );
    // num_predict absent: 8 tokens, capped to 5 by stop_early_at.
    let (status, body) = client::post_json(
        server.port(),
        "/api/generate",
        &json!({"model": "fake-model", "prompt": "hi", "stream": false}),
    );
    assert_eq!(status, 200);
    assert_eq!(body["response"], " tok0 tok1 tok2 tok3 tok4");
    assert_eq!(body["done"], true);
    assert_eq!(body["done_reason"], "stop");
    assert_eq!(body["eval_count"], 5);
    assert_eq!(server.bodies()[0]["stream"], false);
}

#[test]
fn ollama_service_endpoints_and_errors() {
    let server = start(Flavor::Ollama);
    let root = Exchange::open(server.port(), "GET", "/", None).unwrap();
    assert_eq!(root.status, 200);
    assert_eq!(root.whole_body().unwrap(), b"Ollama is running");
    assert_eq!(
        client::get_json(server.port(), "/api/version"),
        (200, json!({"version": "0.0.0-fake"}))
    );
    let (status, tags) = client::get_json(server.port(), "/api/tags");
    assert_eq!(status, 200);
    assert_eq!(tags["models"][0]["name"], "fake-model:latest");
    assert_eq!(tags["models"][0]["digest"], OLLAMA_DIGEST);

    let (status, show) =
        client::post_json(server.port(), "/api/show", &json!({"model": "fake-model"}));
    assert_eq!(status, 200);
    assert_eq!(show["details"]["parameter_size"], "8.0B");
    assert_eq!(
        show["model_info"]["general.parameter_count"],
        8_030_261_248_u64
    );
    assert_eq!(show["model_info"]["llama.context_length"], 131_072);
    let (status, _) = client::post_json(server.port(), "/api/show", &json!({"name": "fake-model"}));
    assert_eq!(status, 200);
    assert_eq!(
        client::post_json(server.port(), "/api/show", &json!({"model": "x"})),
        (404, json!({"error": "model 'x' not found"}))
    );
    assert_eq!(
        client::post_json(
            server.port(),
            "/api/generate",
            &json!({"model": "x", "prompt": "hi"})
        ),
        (
            404,
            json!({"error": "model \"x\" not found, try pulling it first"})
        )
    );
    // A failed generation neither loads the model nor goes uncounted.
    assert_eq!(
        client::get_json(server.port(), "/api/ps").1,
        json!({"models": []})
    );
    assert_eq!(server.requests_seen(), 1);
}

#[test]
fn ollama_faults() {
    let server = start_with(
        Flavor::Ollama,
        Behavior {
            fault: Some(Fault::Garbage { request: 0 }),
            ..Behavior::default()
        },
    );
    let body = json!({"model": "fake-model", "prompt": "hi", "options": {"num_predict": 3}});
    let mut exchange = Exchange::open(
        server.port(),
        "POST",
        "/api/generate",
        Some(&body.to_string()),
    )
    .unwrap();
    let chunks = exchange.all_chunks().unwrap();
    assert_eq!(chunks.len(), 3 + 1 + 1);
    assert_eq!(chunks[2], b"{\"response\": garbage\n");
    assert!(serde_json::from_slice::<Value>(&chunks[2]).is_err());
    assert_eq!(ndjson(&chunks[4])["done"], true);

    let server = start_with(
        Flavor::Ollama,
        Behavior {
            fault: Some(Fault::Truncated { request: 0 }),
            ..Behavior::default()
        },
    );
    let mut exchange = Exchange::open(
        server.port(),
        "POST",
        "/api/chat",
        Some(
            &json!({
                "model": "fake-model", "messages": [{"role": "user", "content": "hi"}],
            })
            .to_string(),
        ),
    )
    .unwrap();
    assert_eq!(
        ndjson(&exchange.next_chunk().unwrap().unwrap())["done"],
        false
    );
    assert_eq!(
        ndjson(&exchange.next_chunk().unwrap().unwrap())["done"],
        false
    );
    assert_eq!(
        exchange.next_chunk().unwrap_err().kind(),
        ErrorKind::UnexpectedEof
    );

    let server = start_with(
        Flavor::Ollama,
        Behavior {
            fault: Some(Fault::HttpError {
                request: 0,
                status: 500,
            }),
            ..Behavior::default()
        },
    );
    let (status, error) = client::post_json(server.port(), "/api/generate", &body);
    assert_eq!(status, 500);
    assert!(error["error"].is_string());
}

#[test]
fn concurrent_streams_are_served_independently() {
    let server = start(Flavor::OpenAi);
    let mut a = open_completion(&server, 20);
    let mut b = open_completion(&server, 20);
    let (a, b) = (a.all_chunks().unwrap(), b.all_chunks().unwrap());
    assert_eq!((a.len(), b.len()), (22, 22));
    let ids: Vec<Value> = [&a[0], &b[0]]
        .iter()
        .map(|c| sse_json(c)["id"].clone())
        .collect();
    assert_ne!(ids[0], ids[1]);
    assert_eq!(server.requests_seen(), 2);
}
