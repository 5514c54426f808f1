//! A minimal HTTP/1.1 server for tests that stand in for an engine that cannot run here
//! (`test-util` feature only): one request per connection, JSON bodies, a handler per request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// What the server received, in order: ("METHOD /path", JSON body or null).
pub type Log = Arc<Mutex<Vec<(String, Value)>>>;

/// Serves `handler(route, body) -> (status, JSON answer)` on a free local port, in a thread
/// that lives as long as the test process; returns the base URL and the request log.
pub fn serve(handler: impl Fn(&str, &Value) -> (u16, Value) + Send + 'static) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    let log: Log = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok((route, body)) = read_request(&mut stream) else {
                continue;
            };
            seen.lock().unwrap().push((route.clone(), body.clone()));
            let (code, answer) = handler(&route, &body);
            let text = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (url, log)
}

fn read_request(stream: &mut std::net::TcpStream) -> std::io::Result<(String, Value)> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let route = format!(
        "{} {}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((route, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
