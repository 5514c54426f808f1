//! A minimal TensorBoard event-file writer: scalars only, no protobuf or TensorFlow dependency.
//!
//! An event file is a sequence of TFRecords, each holding one serialized `Event` protobuf:
//!
//! ```text
//! record = u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
//! Event         { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! Summary       { repeated Value value = 1; }
//! Summary.Value { string tag = 1; float simple_value = 2; }
//! ```
//!
//! The first record is the `file_version` event `brain.Event:2`; TensorBoard reads any file in
//! the log directory whose name contains `tfevents`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Writes scalar summaries to one new event file in a log directory.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` (and its parents) and a new file
    /// `events.out.tfevents.<unix_secs>.<hostname>.azr` in it, starting with the
    /// `brain.Event:2` file-version event. An existing file is never overwritten: a name that is
    /// taken gets a numeric suffix.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the TensorBoard log directory {}", dir.display()))?;
        let base = format!(
            "events.out.tfevents.{}.{}.azr",
            unix_secs() as u64,
            hostname()
        );
        let (path, file) = create_new_file(dir, &base)?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        let mut event = Vec::new();
        put_double(&mut event, 1, unix_secs());
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.write_record(&event)?;
        writer.flush()?;
        Ok(writer)
    }

    /// The event file being written.
    #[allow(dead_code)] // for callers that log where the events go; tests use it
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one scalar (stored as a 32-bit float, as TensorBoard's `simple_value` is).
    #[allow(dead_code)] // the one-scalar form of add_json_scalars; tests use it
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<()> {
        self.add_scalars(&[(tag.to_string(), value)], step)
    }

    /// Writes every number and bool in `value` as a scalar, in one event. Nested objects are
    /// flattened into '/'-joined tags under `prefix` (no prefix when it is empty); bools are 1
    /// or 0; strings, nulls and arrays are skipped. A top-level `step` field is written like any
    /// other, so leave it out of `value` if it is the step.
    pub fn add_json_scalars(&mut self, prefix: &str, value: &Value, step: i64) -> Result<()> {
        let mut scalars = Vec::new();
        flatten_json(prefix, value, &mut scalars);
        if scalars.is_empty() {
            return Ok(());
        }
        self.add_scalars(&scalars, step)
    }

    /// Flushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn add_scalars(&mut self, scalars: &[(String, f64)], step: i64) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut entry = Vec::new();
            put_bytes(&mut entry, 1, tag.as_bytes());
            put_float(&mut entry, 2, *value as f32);
            put_bytes(&mut summary, 1, &entry);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, unix_secs());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        record.extend_from_slice(data);
        record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
        self.out
            .write_all(&record)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Appends the numbers and bools of `value` to `out` as ('/'-joined key, value), in the order
/// of the JSON object; nested objects extend the key, bools are 1 or 0, and strings, nulls and
/// arrays are skipped. `prefix` (if not empty) starts every key; a bare number gets `prefix`
/// itself as its key.
pub fn flatten_json(prefix: &str, value: &Value, out: &mut Vec<(String, f64)>) {
    match value {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.push((prefix.to_string(), x));
            }
        }
        Value::Bool(b) => out.push((prefix.to_string(), f64::from(u8::from(*b)))),
        Value::Object(map) => {
            for (key, child) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}/{key}")
                };
                flatten_json(&name, child, out);
            }
        }
        Value::String(_) | Value::Null | Value::Array(_) => {}
    }
}

fn create_new_file(dir: &Path, base: &str) -> Result<(PathBuf, File)> {
    for n in 0..1000 {
        let name = if n == 0 {
            base.to_string()
        } else {
            format!("{base}.{n}")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the event file {}", path.display()))
            }
        }
    }
    bail!(
        "could not create a new event file {base} in {}: 1000 names are taken",
        dir.display()
    )
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The host name, kept to characters that are safe in a file name.
fn hostname() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

// --- protobuf encoding: just the wire types the Event message needs ---

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(buf, (field << 3) | wire);
}

/// An int64 field: negative values are their 64-bit two's complement (10 bytes), as in protobuf.
fn put_varint_field(buf: &mut Vec<u8>, field: u64, v: u64) {
    put_key(buf, field, WIRE_VARINT);
    put_varint(buf, v);
}

fn put_double(buf: &mut Vec<u8>, field: u64, v: f64) {
    put_key(buf, field, WIRE_FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_float(buf: &mut Vec<u8>, field: u64, v: f32) {
    put_key(buf, field, WIRE_FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

// --- CRC32C (Castagnoli), as TFRecord uses it ---

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78 // the reflected Castagnoli polynomial
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    /// One decoded protobuf field: its number and either an integer (varint, fixed32/64 bits)
    /// or the bytes of a length-delimited field.
    #[derive(Debug)]
    enum Field {
        Int(u64),
        Bytes(Vec<u8>),
    }

    fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = buf[*pos];
            *pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn decode(buf: &[u8]) -> Vec<(u64, Field)> {
        let mut pos = 0;
        let mut fields = Vec::new();
        while pos < buf.len() {
            let key = read_varint(buf, &mut pos);
            let field = match key & 7 {
                WIRE_VARINT => Field::Int(read_varint(buf, &mut pos)),
                WIRE_FIXED64 => {
                    let v = u64::from_le_bytes(buf[pos..pos + 8].try_into().unwrap());
                    pos += 8;
                    Field::Int(v)
                }
                WIRE_FIXED32 => {
                    let v = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
                    pos += 4;
                    Field::Int(u64::from(v))
                }
                WIRE_LEN => {
                    let len = read_varint(buf, &mut pos) as usize;
                    pos += len;
                    Field::Bytes(buf[pos - len..pos].to_vec())
                }
                other => panic!("unexpected wire type {other}"),
            };
            fields.push((key >> 3, field));
        }
        fields
    }

    /// The TFRecord payloads of an event file, checking both CRCs of every record.
    fn records(file: &[u8]) -> Vec<Vec<u8>> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < file.len() {
            let len_bytes = &file[pos..pos + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let len_crc = u32::from_le_bytes(file[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(len_crc, masked_crc32c(len_bytes), "length crc");
            let data = &file[pos + 12..pos + 12 + len];
            let data_crc =
                u32::from_le_bytes(file[pos + 12 + len..pos + 16 + len].try_into().unwrap());
            assert_eq!(data_crc, masked_crc32c(data), "data crc");
            out.push(data.to_vec());
            pos += 16 + len;
        }
        out
    }

    /// (wall_time, step, file_version, [(tag, simple_value)]) of one Event.
    type Event = (f64, i64, Option<String>, Vec<(String, f32)>);

    fn event(data: &[u8]) -> Event {
        let (mut wall, mut step, mut version, mut values) = (0.0, 0, None, Vec::new());
        for (num, field) in decode(data) {
            match (num, field) {
                (1, Field::Int(v)) => wall = f64::from_bits(v),
                (2, Field::Int(v)) => step = v as i64,
                (3, Field::Bytes(b)) => version = Some(String::from_utf8(b).unwrap()),
                (5, Field::Bytes(summary)) => {
                    for (n, value) in decode(&summary) {
                        let (1, Field::Bytes(value)) = (n, value) else {
                            panic!("bad Summary field {n}");
                        };
                        let (mut tag, mut simple) = (String::new(), f32::NAN);
                        for (n, f) in decode(&value) {
                            match (n, f) {
                                (1, Field::Bytes(b)) => tag = String::from_utf8(b).unwrap(),
                                (2, Field::Int(v)) => simple = f32::from_bits(v as u32),
                                other => panic!("bad Summary.Value field {other:?}"),
                            }
                        }
                        values.push((tag, simple));
                    }
                }
                other => panic!("bad Event field {other:?}"),
            }
        }
        (wall, step, version, values)
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let logdir = dir.path().join("tb");
        let mut w = EventWriter::create(&logdir).unwrap();
        w.add_scalar("train/loss", 0.75, 0).unwrap();
        w.add_scalar("train/loss", -1.5, 300).unwrap();
        w.add_scalar("big_step", 2.0, -7).unwrap();
        let metrics = serde_json::json!({
            "groups": {"solve_deduction": {"accuracy": 0.25, "count": 8}},
            "ok": true,
            "name": "skipped",
            "hist": [1, 2],
            "none": null
        });
        w.add_json_scalars("m", &metrics, 5).unwrap();
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        drop(w);

        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert!(name.ends_with(".azr"), "{name}");
        let bytes = std::fs::read(&path).unwrap();
        let events: Vec<Event> = records(&bytes).iter().map(|r| event(r)).collect();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].2.as_deref(), Some("brain.Event:2"));
        assert!(events[0].0 > 1.0e9, "wall time {}", events[0].0);

        let scalars: Vec<(i64, Vec<(String, f32)>)> = events[1..]
            .iter()
            .map(|(_, step, _, values)| (*step, values.clone()))
            .collect();
        let v = |tag: &str, x: f32| (tag.to_string(), x);
        assert_eq!(
            scalars,
            vec![
                (0, vec![v("train/loss", 0.75)]),
                (300, vec![v("train/loss", -1.5)]),
                (-7, vec![v("big_step", 2.0)]),
                (
                    5,
                    vec![
                        v("m/groups/solve_deduction/accuracy", 0.25),
                        v("m/groups/solve_deduction/count", 8.0),
                        v("m/ok", 1.0),
                    ]
                ),
            ]
        );
    }

    #[test]
    fn second_writer_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = EventWriter::create(dir.path()).unwrap();
        let b = EventWriter::create(dir.path()).unwrap();
        assert_ne!(a.path(), b.path());
    }

    #[test]
    fn flatten_without_prefix() {
        let mut out = Vec::new();
        flatten_json(
            "",
            &serde_json::json!({"a": {"b": 1}, "c": false}),
            &mut out,
        );
        assert_eq!(out, vec![("a/b".to_string(), 1.0), ("c".to_string(), 0.0)]);
    }
}
