//! TensorBoard event files: a small writer for scalar metrics and a reader for the same.
//!
//! `zoo train` writes one file `events.out.tfevents.<unix_seconds>.<hostname>.zoo` beside
//! `metrics.jsonl`, so `tensorboard --logdir runs/` shows every metric by step. Nothing here
//! depends on TensorFlow or a protobuf crate: the two layers of the format are small enough to
//! write by hand.
//!
//! # Records (TFRecord framing)
//!
//! A file is a sequence of records, each (TensorFlow's `tensorflow/core/lib/io/record_writer.cc`):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | `len`: length of `data`, u64 little-endian |
//! | 4 | masked CRC32C of those 8 length bytes, u32 little-endian |
//! | `len` | `data`: one serialized `Event` protobuf |
//! | 4 | masked CRC32C of `data`, u32 little-endian |
//!
//! CRC32C is the Castagnoli CRC (reflected polynomial `0x82F63B78`); masking is
//! `((crc >> 15) | (crc << 17)) + 0xa282ead8` (wrapping), as in TensorFlow's `crc32c.h`.
//!
//! # Events (protobuf)
//!
//! Field numbers from TensorFlow's `tensorflow/core/util/event.proto` and
//! `tensorflow/core/framework/summary.proto` (the same as `tensorboard/compat/proto/`):
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//!           Summary summary = 5; SessionLog session_log = 7; ... }   // 6: deprecated LogMessage
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; ... }   // simple_value: in a oneof
//! SessionLog { SessionStatus status = 1; ... }              // START = 1
//! ```
//!
//! The first record of a file is `Event { wall_time, file_version: "brain.Event:2" }`; then one
//! `Event { wall_time, step, summary }` per training step holding all of that step's scalars.
//! Scalars are `float` (f32) on disk: TensorBoard stores nothing wider for `simple_value`.
//!
//! A resumed run starts a new file whose second record is `Event { step: s, session_log:
//! START }`, `s` the first step it trains: TensorBoard's loader then drops the older file's
//! points at steps `>= s`, the steps the resumed run repeats (`metrics.jsonl` drops those lines
//! the same way).
//!
//! Each step is written with one `write` call, so a crash loses at most the step being written.
//! The fixtures of `tests/fixtures/tensorboard/` (see `generate.py` there) check this writer and
//! reader against TensorBoard's own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// The `file_version` of the first event: the version of the event format TensorBoard expects.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Appends scalar events to one TensorBoard event file.
pub struct EventWriter {
    path: PathBuf,
    file: fs_err::File,
}

impl EventWriter {
    /// Creates a new event file in `dir` (which must exist), named
    /// `events.out.tfevents.<unix_seconds>.<hostname>.zoo`, and writes its first record. A name
    /// already taken (two writers in the same second) gets a suffix `.2`, `.3`, ...: files of
    /// earlier runs in `dir` are never overwritten.
    pub fn create(dir: &Path) -> Result<Self> {
        let now = unix_seconds_now();
        let base = format!("events.out.tfevents.{}.{}.zoo", now as u64, hostname());
        let mut path = dir.join(&base);
        for n in 2.. {
            match Self::create_file(&path, now) {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    path = dir.join(format!("{base}.{n}"));
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    /// Creates exactly the file `path` (failing if it exists) and writes the first record with
    /// `wall_time` (Unix seconds). [`EventWriter::create`] is the usual way in; this one gives
    /// tests a fixed name and time.
    pub fn create_file(path: &Path, wall_time: f64) -> Result<Self> {
        let file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        let mut writer = Self {
            path: path.to_path_buf(),
            file,
        };
        writer.write_event(&encode_file_version_event(wall_time))?;
        Ok(writer)
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event holding the scalars of `step`, `(tag, value)`, at `wall_time` (Unix
    /// seconds), and flushes it. Values are stored as f32; NaN and infinities are kept
    /// (TensorBoard shows them).
    pub fn write_scalars(
        &mut self,
        step: u64,
        wall_time: f64,
        scalars: &[(String, f64)],
    ) -> Result<()> {
        let event = encode_scalars_event(int64_step(step)?, wall_time, scalars);
        self.write_event(&event)
    }

    /// Marks a restart at `step`: TensorBoard drops the points of earlier files in the same
    /// folder at steps `>= step` (a resumed run writes those steps again).
    pub fn write_session_start(&mut self, step: u64, wall_time: f64) -> Result<()> {
        let event = encode_session_start_event(int64_step(step)?, wall_time);
        self.write_event(&event)
    }

    fn write_event(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&frame_record(event))
            .and_then(|_| self.file.flush())
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// Reads the scalars of a TensorBoard event file: `(step, tag, value)` in file order.
///
/// Checks both CRCs of every record. Events and values that are not scalars (the file version,
/// session logs, `simple_value`-less values such as tensors, images, text) and unknown fields are
/// skipped. Any damage (a bad CRC, a file that ends inside a record, malformed protobuf) is an
/// error naming the file, the byte offset and the problem.
pub fn read_scalars(path: &Path) -> Result<Vec<(u64, String, f32)>> {
    let bytes = fs_err::read(path).map_err(|e| Error::io("read", path, e))?;
    let bad = |offset: usize, reason: String| {
        let hint = if reason.contains("ends inside") {
            "the writer was probably stopped mid-record; the records before that offset are intact"
        } else {
            "the file is damaged or not a TensorBoard event file: delete it, or re-run training to \
             write it again"
        };
        Error::BadFile {
            path: path.to_path_buf(),
            reason: format!("record at byte {offset}: {reason}"),
            hint: hint.into(),
        }
    };
    let mut scalars = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (data, next) = unframe_record(&bytes, offset).map_err(|r| bad(offset, r))?;
        let (step, values) = decode_event(data).map_err(|r| bad(offset, r))?;
        scalars.extend(values.into_iter().map(|(tag, v)| (step, tag, v)));
        offset = next;
    }
    Ok(scalars)
}

// ---------------------------------------------------------------------------------------------
// Records: length, masked CRC32C, data, masked CRC32C.
// ---------------------------------------------------------------------------------------------

/// CRC32C lookup table for the reflected Castagnoli polynomial, built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
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

/// CRC32C (Castagnoli) of `data`.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) + 0xa282ead8`, i.e. a right rotation by
/// 15 bits plus a constant (a CRC of data that holds CRCs is then not degenerate).
fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: `len` (u64 LE), masked CRC of `len`, `data`, masked CRC of `data`.
fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&len);
    record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

/// The data of the record starting at `offset`, and the offset after it; both CRCs checked.
fn unframe_record(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), String> {
    let rest = &bytes[offset..];
    if rest.len() < 12 {
        return Err(format!(
            "the file ends inside a record header ({} of 12 bytes)",
            rest.len()
        ));
    }
    let len_bytes = &rest[..8];
    let stored = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    if stored != masked_crc32c(len_bytes) {
        return Err("CRC of the length does not match".into());
    }
    let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    let available = (rest.len() - 12).saturating_sub(4) as u64;
    if len > available {
        return Err(format!(
            "the file ends inside a record ({len} data bytes announced, {available} present)"
        ));
    }
    let len = len as usize;
    let data = &rest[12..12 + len];
    let stored = u32::from_le_bytes(rest[12 + len..16 + len].try_into().expect("4 bytes"));
    if stored != masked_crc32c(data) {
        return Err("CRC of the data does not match".into());
    }
    Ok((data, offset + 16 + len))
}

// ---------------------------------------------------------------------------------------------
// Protobuf: the few wire types the event messages use.
// ---------------------------------------------------------------------------------------------

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(buf, (field << 3) | wire_type);
}

fn put_double(buf: &mut Vec<u8>, field: u64, value: f64) {
    put_key(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

fn put_float(buf: &mut Vec<u8>, field: u64, value: f32) {
    put_key(buf, field, FIXED32);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// An `int64` or enum field (a non-negative value is the plain varint).
fn put_int(buf: &mut Vec<u8>, field: u64, value: i64) {
    put_key(buf, field, VARINT);
    put_varint(buf, value as u64);
}

/// A `string`, `bytes` or embedded message field.
fn put_bytes(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// `Event { wall_time, file_version: "brain.Event:2" }`.
fn encode_file_version_event(wall_time: f64) -> Vec<u8> {
    let mut event = Vec::new();
    put_double(&mut event, 1, wall_time);
    put_bytes(&mut event, 3, FILE_VERSION.as_bytes());
    event
}

/// `Event { wall_time, step, summary: Summary { value: [Value { tag, simple_value }, ...] } }`.
fn encode_scalars_event(step: i64, wall_time: f64, scalars: &[(String, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in scalars {
        let mut entry = Vec::new();
        put_bytes(&mut entry, 1, tag.as_bytes());
        put_float(&mut entry, 2, *value as f32);
        put_bytes(&mut summary, 1, &entry);
    }
    let mut event = Vec::new();
    put_double(&mut event, 1, wall_time);
    put_int(&mut event, 2, step);
    put_bytes(&mut event, 5, &summary);
    event
}

/// `Event { wall_time, step, session_log: SessionLog { status: START } }`.
fn encode_session_start_event(step: i64, wall_time: f64) -> Vec<u8> {
    let mut session_log = Vec::new();
    put_int(&mut session_log, 1, 1);
    let mut event = Vec::new();
    put_double(&mut event, 1, wall_time);
    put_int(&mut event, 2, step);
    put_bytes(&mut event, 7, &session_log);
    event
}

/// One field's payload as read from the wire.
enum Wire<'a> {
    Varint(u64),
    /// Skipped: the only one, `wall_time`, is not returned.
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let &byte = buf
            .get(*pos)
            .ok_or("protobuf varint runs past its message")?;
        *pos += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("protobuf varint longer than 10 bytes".into())
}

/// The next `n` bytes of `buf` at `pos` (advancing `pos`), for the payload of `field`.
fn take<'a>(buf: &'a [u8], pos: &mut usize, n: u64, field: u64) -> Result<&'a [u8], String> {
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| pos.checked_add(n))
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| format!("protobuf field {field} runs past its message"))?;
    let bytes = &buf[*pos..end];
    *pos = end;
    Ok(bytes)
}

/// The fields of one protobuf message, `(field number, payload)`, in wire order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        let field = key >> 3;
        let value = match key & 7 {
            VARINT => Wire::Varint(read_varint(buf, &mut pos)?),
            FIXED64 => {
                take(buf, &mut pos, 8, field)?;
                Wire::Fixed64
            }
            LEN => {
                let len = read_varint(buf, &mut pos)?;
                Wire::Bytes(take(buf, &mut pos, len, field)?)
            }
            FIXED32 => Wire::Fixed32(take(buf, &mut pos, 4, field)?.try_into().expect("4 bytes")),
            other => {
                return Err(format!(
                    "unsupported protobuf wire type {other} (field {field})"
                ));
            }
        };
        out.push((field, value));
    }
    Ok(out)
}

/// An `Event`'s step and its `simple_value` scalars; other fields are skipped.
fn decode_event(data: &[u8]) -> Result<(u64, Vec<(String, f32)>), String> {
    let mut step = 0i64;
    let mut scalars = Vec::new();
    for (field, value) in fields(data)? {
        match (field, value) {
            (2, Wire::Varint(v)) => step = v as i64,
            (2, _) => return Err("Event.step is not a varint".into()),
            (5, Wire::Bytes(summary)) => scalars.extend(decode_summary(summary)?),
            (5, _) => return Err("Event.summary is not a message".into()),
            _ => {}
        }
    }
    let step = u64::try_from(step).map_err(|_| format!("negative step {step}"))?;
    Ok((step, scalars))
}

/// A `Summary`'s `(tag, simple_value)` pairs; values without `simple_value` are skipped.
fn decode_summary(data: &[u8]) -> Result<Vec<(String, f32)>, String> {
    let mut scalars = Vec::new();
    for (field, value) in fields(data)? {
        let (1, Wire::Bytes(entry)) = (field, value) else {
            continue;
        };
        let mut tag = String::new();
        let mut simple_value = None;
        for (field, value) in fields(entry)? {
            match (field, value) {
                (1, Wire::Bytes(bytes)) => {
                    tag = String::from_utf8(bytes.to_vec())
                        .map_err(|_| "Summary.Value.tag is not UTF-8")?;
                }
                (2, Wire::Fixed32(bytes)) => simple_value = Some(f32::from_le_bytes(bytes)),
                (1 | 2, _) => return Err("Summary.Value field has the wrong wire type".into()),
                _ => {}
            }
        }
        if let Some(value) = simple_value {
            scalars.push((tag, value));
        }
    }
    Ok(scalars)
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

fn int64_step(step: u64) -> Result<i64> {
    i64::try_from(step).map_err(|_| {
        Error::Input(format!(
            "step `{step}` does not fit TensorBoard's int64 step"
        ))
    })
}

/// Seconds since the Unix epoch, as TensorBoard's `wall_time`.
pub fn unix_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The machine's name for the file name: `/etc/hostname`, else `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().replace(['/', '\\'], "_"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zoo-tb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tensorboard")
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_encode_and_decode() {
        for value in [0, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            let mut pos = 0;
            assert_eq!(read_varint(&buf, &mut pos).unwrap(), value);
            assert_eq!(pos, buf.len());
        }
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        assert_eq!(buf, [0xAC, 0x02]);
    }

    #[test]
    fn scalars_round_trip_through_a_file() {
        let dir = scratch("round-trip");
        let mut writer = EventWriter::create(&dir).unwrap();
        let steps: [(u64, Vec<(String, f64)>); 3] = [
            (
                1,
                vec![("reward/mean".into(), 0.25), ("actor/loss".into(), -1.5)],
            ),
            (2, vec![("reward/mean".into(), f64::NAN)]),
            (5_000_000_000, vec![("x".repeat(200), 0.1)]),
        ];
        for (step, scalars) in &steps {
            writer.write_scalars(*step, 1.7e9, scalars).unwrap();
        }
        let path = writer.path().to_path_buf();
        drop(writer);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert!(name.ends_with(".zoo"), "{name}");

        let read = read_scalars(&path).unwrap();
        let want: Vec<(u64, String, f64)> = steps
            .iter()
            .flat_map(|(s, v)| v.iter().map(move |(t, x)| (*s, t.clone(), *x)))
            .collect();
        assert_eq!(read.len(), want.len());
        for ((step, tag, value), (want_step, want_tag, want_value)) in read.iter().zip(&want) {
            assert_eq!((step, tag), (want_step, want_tag));
            let want_value = *want_value as f32;
            assert!(
                value.to_bits() == want_value.to_bits(),
                "{tag}: {value} != {want_value}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_writer_in_the_same_second_gets_its_own_file() {
        let dir = scratch("two-files");
        let a = EventWriter::create(&dir).unwrap();
        let b = EventWriter::create(&dir).unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn session_start_events_hold_no_scalars() {
        let dir = scratch("session");
        let mut writer = EventWriter::create(&dir).unwrap();
        writer.write_session_start(11, 1.7e9).unwrap();
        // `Event.session_log` (field 7) holding `SessionLog { status: START }`.
        let event = encode_session_start_event(11, 1.7e9);
        let fields = fields(&event).unwrap();
        assert!(matches!(fields[2], (7, Wire::Bytes([0x08, 0x01]))));
        writer
            .write_scalars(11, 1.7e9, &[("a".into(), 2.0)])
            .unwrap();
        assert_eq!(
            read_scalars(writer.path()).unwrap(),
            [(11, "a".into(), 2.0)]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damage_is_an_error_naming_the_file() {
        let dir = scratch("damage");
        let mut writer = EventWriter::create(&dir).unwrap();
        writer
            .write_scalars(1, 1.7e9, &[("reward/mean".into(), 0.5)])
            .unwrap();
        let path = writer.path().to_path_buf();
        drop(writer);
        let good = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Every single flipped byte is caught by one of the two CRCs, and never panics.
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            let err = read_scalars(&path).unwrap_err().to_string();
            assert!(err.contains(&name), "{err}");
            assert!(err.contains("CRC"), "byte {i}: {err}");
        }
        // A file cut inside its last record.
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        let err = read_scalars(&path).unwrap_err().to_string();
        assert!(err.contains(&name) && err.contains("ends inside"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One step's scalars as TensorBoard's `EventAccumulator` read them (`expected.json`).
    #[derive(serde::Deserialize)]
    struct FixtureStep {
        step: u64,
        wall_time: f64,
        scalars: std::collections::BTreeMap<String, f64>,
    }

    fn fixture_steps() -> Vec<FixtureStep> {
        let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The `wall_time` of the first record of `zoo_written.tfevents`.
    const FIXTURE_FILE_WALL_TIME: f64 = 1_700_000_000.0;

    /// Writes `expected.json`'s steps with zoo's writer into the new file `path`, after a restart
    /// marker at step 0 (which drops nothing: no step comes before it).
    fn write_fixture_with_zoo(path: &Path) {
        let mut writer = EventWriter::create_file(path, FIXTURE_FILE_WALL_TIME).unwrap();
        writer
            .write_session_start(0, FIXTURE_FILE_WALL_TIME)
            .unwrap();
        for step in fixture_steps() {
            let scalars: Vec<(String, f64)> = step.scalars.into_iter().collect();
            writer
                .write_scalars(step.step, step.wall_time, &scalars)
                .unwrap();
        }
    }

    #[test]
    fn reads_the_file_tensorboard_wrote_as_tensorboard_does() {
        let read = read_scalars(&fixture_dir().join("tensorboard_written.tfevents")).unwrap();
        let mut want = Vec::new();
        for step in fixture_steps() {
            for (tag, value) in step.scalars {
                want.push((step.step, tag, value as f32));
            }
        }
        let mut read = read.clone();
        read.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(read, want);
    }

    #[test]
    fn writes_the_file_tensorboard_was_checked_to_read() {
        // `generate.py` checked with TensorBoard's reader that `zoo_written.tfevents` holds
        // `expected.json`; the writer must still produce exactly those bytes.
        let dir = scratch("fixture");
        let path = dir.join("zoo_written.tfevents");
        write_fixture_with_zoo(&path);
        let committed = fixture_dir().join("zoo_written.tfevents");
        assert!(
            std::fs::read(&path).unwrap() == std::fs::read(&committed).unwrap(),
            "zoo's writer no longer writes `{}`; if the change is intended, run \
             `tests/fixtures/tensorboard/generate.py` (it re-checks the file with TensorBoard)",
            committed.display()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Rewrites `tests/fixtures/tensorboard/zoo_written.tfevents`; run by `generate.py`.
    #[test]
    #[ignore = "writes a committed fixture; run by tests/fixtures/tensorboard/generate.py"]
    fn regenerate_zoo_written_fixture() {
        let path = fixture_dir().join("zoo_written.tfevents");
        let _ = std::fs::remove_file(&path);
        write_fixture_with_zoo(&path);
    }
}
