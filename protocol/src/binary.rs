//! The compact binary form of the config stream and of the agent's disk state.
//!
//! JSON stays the readable contract (the golden fixtures); this encoding carries the same
//! [`Snapshot`] in about a fifth of the bytes and can be written row by row by the server
//! and compiled while it arrives by the agent.
//!
//! # Layout
//!
//! A preamble, `TGSB` and the format version (`u32`, little-endian), then frames: a kind
//! byte, a `u32` payload length and the payload. All integers are little-endian.
//!
//! | kind | payload |
//! | --- | --- |
//! | [`FrameKind::Head`] | JSON [`SnapshotHead`]: starts a snapshot |
//! | [`FrameKind::Catalog`] | JSON [`Catalog`]: APIs and plans (small) |
//! | [`FrameKind::Applications`] | application records, any number of frames |
//! | [`FrameKind::Credentials`] | fixed 45-byte credential records, any number of frames |
//! | [`FrameKind::Usage`] | JSON array of [`CurrentUsage`], any number of frames |
//! | [`FrameKind::End`] | `u64` applications, `u64` credentials: the snapshot is complete |
//! | [`FrameKind::Message`] | JSON [`ConfigMessage`] (a delta or heartbeat on the stream) |
//! | [`FrameKind::KeepAlive`] | empty; sent while a snapshot is being built |
//!
//! Format version 3 (written):
//!
//! * An application record is its id (16 bytes), the index of its plan in the catalog as
//!   a varint (LEB128, one byte below 128 plans), a state byte (bits 0–1: 0 pending,
//!   1 live, 2 suspended; bit 2: an `app_id` follows) and, if one follows, the `app_id`'s
//!   length as a varint and its UTF-8 bytes: 18 bytes for an application without one.
//! * A credential record is the key's SHA-256 (32 bytes), the index of its application in
//!   the snapshot's application order (`u32`), a flags byte (bit 0: app key rather than
//!   user key, bit 1: an expiry follows) and, if one follows, the expiry as whole Unix
//!   seconds (`i64`, rounded down: the agent checks expiry to the second): 37 bytes for a
//!   key that never expires, which is most keys, and 45 for one that does.
//!
//! Format version 2 (read only): application records as in version 3; a credential record
//! is always 45 bytes, the expiry's seconds (0 when none) before the flags byte.
//!
//! Format version 1 (read only, so an agent's older `config.bin` and an older server's
//! stream still load): the plan index is a `u32`, the state byte holds the state alone and
//! is followed by the `app_id`'s length as a `u16` (`0xFFFF` for none); the credential's
//! expiry has a nanoseconds `i32` after its seconds (49 bytes).
//!
//! Indices instead of UUIDs save the reader a lookup per key. The format version changes
//! with any change of layout; a reader refuses a preamble with a version it does not know
//! (see [`BinaryError`]). On the config stream the version is negotiated: an agent that
//! reads version 3 asks for [`BINARY_MEDIA_TYPE`] (`version=3`); a server answers an
//! agent asking for an older version (the bare type meant version 1) with NDJSON instead.

use std::io::{self, Write};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delta::ConfigMessage;
use crate::key::{KeyHash, KeyKind};
use crate::mock::ApiMocks;
use crate::routing::Routing;
use crate::snapshot::{Api, Application, ApplicationState, Credential, CurrentUsage, Plan, Snapshot};

/// Content type of the binary config stream, without parameters.
pub const BINARY_CONTENT_TYPE: &str = "application/vnd.tollgate.config+bin";
/// The binary content type with the format version this build writes: what an agent puts
/// in `Accept` and a server in `Content-Type`.
pub const BINARY_MEDIA_TYPE: &str = "application/vnd.tollgate.config+bin; version=3";

/// First four bytes of every binary stream or file.
pub const MAGIC: [u8; 4] = *b"TGSB";
/// The layout version this build writes.
pub const FORMAT_VERSION: u32 = 3;
/// Magic plus version.
pub const PREAMBLE_LEN: usize = 8;
/// Kind byte plus payload length.
pub const FRAME_HEADER_LEN: usize = 5;
/// Bytes per credential record without an expiry (format version 3).
pub const CREDENTIAL_RECORD_LEN: usize = 37;
/// What an expiry adds to a credential record (format version 3).
pub const CREDENTIAL_EXPIRY_LEN: usize = 8;
/// Bytes per credential record in format version 2.
pub const CREDENTIAL_RECORD_LEN_V2: usize = 45;
/// Bytes per credential record in format version 1.
pub const CREDENTIAL_RECORD_LEN_V1: usize = 49;
/// Frames are cut at about this size; a reader refuses anything over [`MAX_FRAME_LEN`].
pub const TARGET_FRAME_LEN: usize = 64 * 1024;
/// The largest frame a reader accepts (the catalog of a very large install fits).
pub const MAX_FRAME_LEN: usize = 256 * 1024 * 1024;

const NO_APP_ID_V1: u16 = u16::MAX;
const FLAG_APP_KEY: u8 = 1;
const FLAG_EXPIRES: u8 = 2;
const STATE_MASK: u8 = 0b11;
const STATE_HAS_APP_ID: u8 = 0b100;

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("not a Tollgate binary snapshot (bad magic bytes)")]
    BadMagic,
    #[error("binary snapshot format version {found} is not supported (this build reads versions 1 to 3)")]
    UnsupportedVersion { found: u32 },
    #[error("unknown frame kind {0}")]
    UnknownFrame(u8),
    #[error("a frame of {0} bytes is larger than the limit of {MAX_FRAME_LEN}")]
    FrameTooLarge(usize),
    #[error("the data ends in the middle of a frame")]
    Truncated,
    #[error("malformed {what}: {message}")]
    Malformed { what: &'static str, message: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl BinaryError {
    fn malformed(what: &'static str, message: impl std::fmt::Display) -> BinaryError {
        BinaryError::Malformed { what, message: message.to_string() }
    }
}

/// A layout version this build reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatVersion {
    /// The first layout: 49-byte credentials, fixed-width application records.
    V1,
    /// Varint application records, 45-byte credentials.
    V2,
    /// The layout this build writes: credentials without an expiry take 37 bytes.
    #[default]
    V3,
}

impl FormatVersion {
    pub fn parse(found: u32) -> Result<FormatVersion, BinaryError> {
        match found {
            1 => Ok(FormatVersion::V1),
            2 => Ok(FormatVersion::V2),
            3 => Ok(FormatVersion::V3),
            found => Err(BinaryError::UnsupportedVersion { found }),
        }
    }

    pub fn number(self) -> u32 {
        match self {
            FormatVersion::V1 => 1,
            FormatVersion::V2 => 2,
            FormatVersion::V3 => 3,
        }
    }

    /// The length of every credential record, for the versions where it is fixed.
    fn fixed_credential_len(self) -> Option<usize> {
        match self {
            FormatVersion::V1 => Some(CREDENTIAL_RECORD_LEN_V1),
            FormatVersion::V2 => Some(CREDENTIAL_RECORD_LEN_V2),
            FormatVersion::V3 => None,
        }
    }
}

/// Whether an `Accept` header value asks for the binary stream in the format version this
/// build writes (`version=3`). The bare type is what agents reading only version 1 send.
pub fn accepts_binary(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        if !parts.next().is_some_and(|kind| kind.eq_ignore_ascii_case(BINARY_CONTENT_TYPE)) {
            return false;
        }
        let mut version = false;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "version" => version = value.parse::<u32>().is_ok_and(|v| v == FORMAT_VERSION),
                // `q=0` says "not this one".
                "q" if value.parse::<f32>().is_ok_and(|q| q <= 0.0) => return false,
                _ => {}
            }
        }
        version
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Head = 1,
    Catalog = 2,
    Applications = 3,
    Credentials = 4,
    Usage = 5,
    End = 6,
    Message = 7,
    KeepAlive = 8,
}

impl FrameKind {
    pub fn parse(byte: u8) -> Result<FrameKind, BinaryError> {
        Ok(match byte {
            1 => FrameKind::Head,
            2 => FrameKind::Catalog,
            3 => FrameKind::Applications,
            4 => FrameKind::Credentials,
            5 => FrameKind::Usage,
            6 => FrameKind::End,
            7 => FrameKind::Message,
            8 => FrameKind::KeepAlive,
            other => return Err(BinaryError::UnknownFrame(other)),
        })
    }
}

/// What a snapshot's first frame says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHead {
    pub protocol_version: u32,
    pub revision: u64,
    pub generated_at: Timestamp,
    /// [`Snapshot::requires`]; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// The small part of a snapshot, as one JSON frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub apis: Vec<Api>,
    pub plans: Vec<Plan>,
    /// [`Snapshot::routing`]; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing: Vec<Routing>,
    /// [`Snapshot::mocks`]; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mocks: Vec<ApiMocks>,
}

/// An application, its plan named by index in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicationRecord<'a> {
    pub id: Uuid,
    pub plan: u32,
    pub state: ApplicationState,
    pub app_id: Option<&'a str>,
}

/// A credential, its application named by index in the snapshot's application order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialRecord {
    pub hash: [u8; 32],
    pub kind: KeyKind,
    pub application: u32,
    pub expires_at: Option<Timestamp>,
}

/// What [`SnapshotEnd`] counts, so a reader can tell a complete snapshot from a cut one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotEnd {
    pub applications: u64,
    pub credentials: u64,
}

/// The magic bytes and format version that open a stream or file.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut out = [0u8; PREAMBLE_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// Checks a preamble; its format version, or a refusal that names the version found.
pub fn check_preamble(bytes: &[u8]) -> Result<FormatVersion, BinaryError> {
    if bytes.len() < PREAMBLE_LEN {
        return Err(BinaryError::Truncated);
    }
    if bytes[..4] != MAGIC {
        return Err(BinaryError::BadMagic);
    }
    FormatVersion::parse(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]))
}

/// Writes one whole frame.
pub fn write_frame(out: &mut impl Write, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too large"))?;
    out.write_all(&[kind as u8])?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(payload)
}

/// A message frame (delta, heartbeat) for the binary stream.
pub fn message_frame(message: &ConfigMessage) -> Result<Vec<u8>, BinaryError> {
    let json = serde_json::to_vec(message).map_err(|e| BinaryError::malformed("message", e))?;
    let mut out = Vec::with_capacity(json.len() + FRAME_HEADER_LEN);
    write_frame(&mut out, FrameKind::Message, &json)?;
    Ok(out)
}

/// Writes a snapshot frame by frame, records batched into frames of about
/// [`TARGET_FRAME_LEN`]. Call in order: [`head`](Self::head), [`catalog`](Self::catalog),
/// applications, credentials, [`usage`](Self::usage), [`finish`](Self::finish). The
/// preamble is not written (a stream writes it once, before its first snapshot).
pub struct SnapshotWriter<W: Write> {
    out: W,
    records: Vec<u8>,
    open: Option<FrameKind>,
    end: SnapshotEnd,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(out: W) -> Self {
        SnapshotWriter {
            out,
            records: Vec::with_capacity(TARGET_FRAME_LEN + 1024),
            open: None,
            end: SnapshotEnd::default(),
        }
    }

    /// Where frames go; complete frames only, records in a half-filled frame are kept back.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn head(&mut self, head: &SnapshotHead) -> Result<(), BinaryError> {
        self.json(FrameKind::Head, head)
    }

    pub fn catalog(
        &mut self,
        apis: &[Api],
        plans: &[Plan],
        routing: &[Routing],
        mocks: &[ApiMocks],
    ) -> Result<(), BinaryError> {
        #[derive(Serialize)]
        struct View<'a> {
            apis: &'a [Api],
            plans: &'a [Plan],
            #[serde(skip_serializing_if = "<[Routing]>::is_empty")]
            routing: &'a [Routing],
            #[serde(skip_serializing_if = "<[ApiMocks]>::is_empty")]
            mocks: &'a [ApiMocks],
        }
        self.json(FrameKind::Catalog, &View { apis, plans, routing, mocks })
    }

    pub fn application(&mut self, app: &ApplicationRecord<'_>) -> Result<(), BinaryError> {
        self.switch(FrameKind::Applications)?;
        self.records.extend_from_slice(app.id.as_bytes());
        push_varint(&mut self.records, app.plan);
        match app.app_id.map(str::as_bytes) {
            None => self.records.push(state_byte(app.state)),
            Some(bytes) => {
                let len = u32::try_from(bytes.len())
                    .map_err(|_| BinaryError::malformed("application", "app_id longer than 4 GiB"))?;
                self.records.push(state_byte(app.state) | STATE_HAS_APP_ID);
                push_varint(&mut self.records, len);
                self.records.extend_from_slice(bytes);
            }
        }
        self.end.applications += 1;
        self.cut()
    }

    pub fn credential(&mut self, credential: &CredentialRecord) -> Result<(), BinaryError> {
        self.switch(FrameKind::Credentials)?;
        let mut flags = match credential.kind {
            KeyKind::UserKey => 0,
            KeyKind::AppKey => FLAG_APP_KEY,
            other => {
                return Err(BinaryError::malformed(
                    "credential",
                    format!("{} keys are not sent to agents", other.code()),
                ));
            }
        };
        // Rounded down, as the agent keeps it: a key never outlives its expiry.
        let seconds = credential.expires_at.map(|at| at.as_second() - i64::from(at.subsec_nanosecond() < 0));
        if seconds.is_some() {
            flags |= FLAG_EXPIRES;
        }
        self.records.extend_from_slice(&credential.hash);
        self.records.extend_from_slice(&credential.application.to_le_bytes());
        self.records.push(flags);
        if let Some(seconds) = seconds {
            self.records.extend_from_slice(&seconds.to_le_bytes());
        }
        self.end.credentials += 1;
        self.cut()
    }

    pub fn usage(&mut self, usage: &[CurrentUsage]) -> Result<(), BinaryError> {
        self.json(FrameKind::Usage, &usage)
    }

    /// Writes the end frame and returns the output.
    pub fn finish(mut self) -> Result<W, BinaryError> {
        self.flush_records()?;
        let mut end = [0u8; 16];
        end[..8].copy_from_slice(&self.end.applications.to_le_bytes());
        end[8..].copy_from_slice(&self.end.credentials.to_le_bytes());
        write_frame(&mut self.out, FrameKind::End, &end)?;
        Ok(self.out)
    }

    fn json(&mut self, kind: FrameKind, value: &impl Serialize) -> Result<(), BinaryError> {
        self.flush_records()?;
        let json = serde_json::to_vec(value).map_err(|e| BinaryError::malformed("JSON frame", e))?;
        write_frame(&mut self.out, kind, &json)?;
        Ok(())
    }

    fn switch(&mut self, kind: FrameKind) -> Result<(), BinaryError> {
        if self.open != Some(kind) {
            self.flush_records()?;
            self.open = Some(kind);
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), BinaryError> {
        if self.records.len() >= TARGET_FRAME_LEN { self.flush_records() } else { Ok(()) }
    }

    fn flush_records(&mut self) -> Result<(), BinaryError> {
        if let Some(kind) = self.open.take()
            && !self.records.is_empty()
        {
            write_frame(&mut self.out, kind, &self.records)?;
            self.records.clear();
        }
        Ok(())
    }
}

fn state_byte(state: ApplicationState) -> u8 {
    match state {
        ApplicationState::Pending => 0,
        ApplicationState::Live => 1,
        ApplicationState::Suspended => 2,
    }
}

/// LEB128: seven bits a byte, low bits first, the high bit saying another byte follows.
fn push_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A varint at the start of `bytes` and the bytes it took; `None` if cut short or over
/// `u32`.
fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return u32::try_from(value).ok().map(|value| (value, i + 1));
        }
    }
    None
}

/// One frame as read, with the format version of the stream or file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub format: FormatVersion,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn head(&self) -> Result<SnapshotHead, BinaryError> {
        serde_json::from_slice(&self.payload).map_err(|e| BinaryError::malformed("head frame", e))
    }

    pub fn catalog(&self) -> Result<Catalog, BinaryError> {
        serde_json::from_slice(&self.payload).map_err(|e| BinaryError::malformed("catalog frame", e))
    }

    pub fn usage(&self) -> Result<Vec<CurrentUsage>, BinaryError> {
        serde_json::from_slice(&self.payload).map_err(|e| BinaryError::malformed("usage frame", e))
    }

    pub fn message(&self) -> Result<ConfigMessage, BinaryError> {
        serde_json::from_slice(&self.payload).map_err(|e| BinaryError::malformed("message frame", e))
    }

    pub fn end(&self) -> Result<SnapshotEnd, BinaryError> {
        let bytes: &[u8; 16] =
            self.payload.as_slice().try_into().map_err(|_| BinaryError::malformed("end frame", "not 16 bytes"))?;
        Ok(SnapshotEnd {
            applications: u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default()),
            credentials: u64::from_le_bytes(bytes[8..].try_into().unwrap_or_default()),
        })
    }

    /// The application records of an applications frame.
    pub fn applications(&self) -> ApplicationRecords<'_> {
        Records { rest: &self.payload, format: self.format, decode: application_record }
    }

    /// The credential records of a credentials frame; refused at once when a fixed-width
    /// layout does not divide the frame.
    pub fn credentials(&self) -> Result<CredentialRecords<'_>, BinaryError> {
        if let Some(len) = self.format.fixed_credential_len()
            && !self.payload.len().is_multiple_of(len)
        {
            return Err(BinaryError::malformed(
                "credentials frame",
                format!("not a whole number of {len}-byte records"),
            ));
        }
        Ok(Records { rest: &self.payload, format: self.format, decode: credential_record })
    }
}

/// The records of an applications or a credentials frame, decoded one at a time; after a
/// malformed record, nothing more.
pub struct Records<'a, T> {
    rest: &'a [u8],
    format: FormatVersion,
    decode: Decoder<'a, T>,
}

/// Decodes one record at the start of the bytes; returns it and how many bytes it took.
type Decoder<'a, T> = fn(&'a [u8], FormatVersion) -> Result<(T, usize), BinaryError>;

pub type ApplicationRecords<'a> = Records<'a, ApplicationRecord<'a>>;
pub type CredentialRecords<'a> = Records<'a, CredentialRecord>;

impl<T> Iterator for Records<'_, T> {
    type Item = Result<T, BinaryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match (self.decode)(self.rest, self.format) {
            Ok((record, used)) => {
                self.rest = self.rest.get(used..).unwrap_or_default();
                Some(Ok(record))
            }
            Err(err) => {
                self.rest = &[];
                Some(Err(err))
            }
        }
    }
}

fn credential_record(rest: &[u8], format: FormatVersion) -> Result<(CredentialRecord, usize), BinaryError> {
    let cut = || BinaryError::malformed("credential", "record cut short");
    let fixed = rest.get(..36).ok_or_else(cut)?;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&fixed[..32]);
    let application = u32::from_le_bytes(fixed[32..36].try_into().unwrap_or_default());
    let seconds_at = |at: usize| rest.get(at..at + 8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()));
    // Where the flags byte is, the expiry's seconds and nanoseconds, and the length.
    let (flags, seconds, nanos, len) = match format {
        FormatVersion::V1 => {
            let nanos = rest.get(44..48).ok_or_else(cut)?;
            let nanos = i32::from_le_bytes(nanos.try_into().unwrap_or_default());
            (*rest.get(48).ok_or_else(cut)?, seconds_at(36).ok_or_else(cut)?, nanos, CREDENTIAL_RECORD_LEN_V1)
        }
        FormatVersion::V2 => {
            (*rest.get(44).ok_or_else(cut)?, seconds_at(36).ok_or_else(cut)?, 0, CREDENTIAL_RECORD_LEN_V2)
        }
        FormatVersion::V3 => {
            let flags = *rest.get(36).ok_or_else(cut)?;
            if flags & FLAG_EXPIRES != 0 {
                (flags, seconds_at(37).ok_or_else(cut)?, 0, CREDENTIAL_RECORD_LEN + CREDENTIAL_EXPIRY_LEN)
            } else {
                (flags, 0, 0, CREDENTIAL_RECORD_LEN)
            }
        }
    };
    if flags & !(FLAG_APP_KEY | FLAG_EXPIRES) != 0 {
        return Err(BinaryError::malformed("credential", format!("unknown flags {flags:#04x}")));
    }
    let kind = if flags & FLAG_APP_KEY != 0 { KeyKind::AppKey } else { KeyKind::UserKey };
    let expires_at = if flags & FLAG_EXPIRES != 0 {
        Some(Timestamp::new(seconds, nanos).map_err(|e| BinaryError::malformed("credential expiry", e))?)
    } else {
        None
    };
    Ok((CredentialRecord { hash, kind, application, expires_at }, len))
}

fn application_record(rest: &[u8], format: FormatVersion) -> Result<(ApplicationRecord<'_>, usize), BinaryError> {
    match format {
        FormatVersion::V1 => application_record_v1(rest),
        FormatVersion::V2 | FormatVersion::V3 => application_record_v2(rest),
    }
}

fn application_record_v2(rest: &[u8]) -> Result<(ApplicationRecord<'_>, usize), BinaryError> {
    let cut = || BinaryError::malformed("application", "record cut short");
    let id =
        Uuid::from_slice(rest.get(..16).ok_or_else(cut)?).map_err(|e| BinaryError::malformed("application id", e))?;
    let (plan, used) = read_varint(&rest[16..])
        .ok_or_else(|| BinaryError::malformed("application plan index", "a varint cut short or over 32 bits"))?;
    let at = 16 + used;
    let byte = *rest.get(at).ok_or_else(cut)?;
    if byte & !(STATE_MASK | STATE_HAS_APP_ID) != 0 {
        return Err(BinaryError::malformed("application state", format!("unknown bits in {byte:#04x}")));
    }
    let state = parse_state(byte & STATE_MASK)?;
    let mut end = at + 1;
    let app_id = if byte & STATE_HAS_APP_ID != 0 {
        let (len, used) = read_varint(&rest[end..])
            .ok_or_else(|| BinaryError::malformed("application app_id length", "a varint cut short or over 32 bits"))?;
        let start = end + used;
        end = start.checked_add(len as usize).ok_or_else(cut)?;
        let bytes = rest.get(start..end).ok_or_else(|| BinaryError::malformed("application", "app_id cut short"))?;
        Some(std::str::from_utf8(bytes).map_err(|e| BinaryError::malformed("application app_id", e))?)
    } else {
        None
    };
    Ok((ApplicationRecord { id, plan, state, app_id }, end))
}

fn application_record_v1(rest: &[u8]) -> Result<(ApplicationRecord<'_>, usize), BinaryError> {
    const FIXED: usize = 16 + 4 + 1 + 2;
    if rest.len() < FIXED {
        return Err(BinaryError::malformed("application", "record cut short"));
    }
    let id = Uuid::from_slice(&rest[..16]).map_err(|e| BinaryError::malformed("application id", e))?;
    let plan = u32::from_le_bytes(rest[16..20].try_into().unwrap_or_default());
    let state = parse_state(rest[20])?;
    let len = u16::from_le_bytes([rest[21], rest[22]]);
    let (app_id, used) = if len == NO_APP_ID_V1 {
        (None, FIXED)
    } else {
        let end = FIXED + usize::from(len);
        let bytes = rest.get(FIXED..end).ok_or_else(|| BinaryError::malformed("application", "app_id cut short"))?;
        let text = std::str::from_utf8(bytes).map_err(|e| BinaryError::malformed("application app_id", e))?;
        (Some(text), end)
    };
    Ok((ApplicationRecord { id, plan, state, app_id }, used))
}

fn parse_state(byte: u8) -> Result<ApplicationState, BinaryError> {
    match byte {
        0 => Ok(ApplicationState::Pending),
        1 => Ok(ApplicationState::Live),
        2 => Ok(ApplicationState::Suspended),
        other => Err(BinaryError::malformed("application state", format!("unknown state {other}"))),
    }
}

/// Splits bytes as they arrive into frames, checking the preamble first.
#[derive(Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    start: usize,
    format: Option<FormatVersion>,
}

impl FrameReader {
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buffer.len() {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next whole frame, `None` until enough bytes have arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, BinaryError> {
        let rest = &self.buffer[self.start..];
        let Some(format) = self.format else {
            if rest.len() < PREAMBLE_LEN {
                // Fail early on a wrong magic rather than wait for eight bytes.
                if rest.len() >= 4 && rest[..4] != MAGIC {
                    return Err(BinaryError::BadMagic);
                }
                return Ok(None);
            }
            self.format = Some(check_preamble(rest)?);
            self.start += PREAMBLE_LEN;
            return self.next_frame();
        };
        if rest.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let kind = FrameKind::parse(rest[0])?;
        let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(BinaryError::FrameTooLarge(len));
        }
        if rest.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let payload = rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].to_vec();
        self.start += FRAME_HEADER_LEN + len;
        Ok(Some(Frame { kind, format, payload }))
    }
}

/// Reads the preamble from a reader (a file): its format version, or a refusal.
pub fn read_preamble(input: &mut impl io::Read) -> Result<FormatVersion, BinaryError> {
    let mut preamble = [0u8; PREAMBLE_LEN];
    input.read_exact(&mut preamble).map_err(eof_is_truncated)?;
    check_preamble(&preamble)
}

/// Reads the next frame from a reader; `None` at a clean end between frames. Holds one
/// frame in memory at a time, so a large file is never read whole.
pub fn read_frame(input: &mut impl io::Read, format: FormatVersion) -> Result<Option<Frame>, BinaryError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < FRAME_HEADER_LEN {
        match input.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(BinaryError::Truncated),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    let kind = FrameKind::parse(header[0])?;
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(BinaryError::FrameTooLarge(len));
    }
    // Grows with what arrives: a corrupt length costs nothing until bytes back it.
    let mut payload = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(input, len as u64), &mut payload)?;
    if payload.len() < len {
        return Err(BinaryError::Truncated);
    }
    Ok(Some(Frame { kind, format, payload }))
}

fn eof_is_truncated(err: io::Error) -> BinaryError {
    if err.kind() == io::ErrorKind::UnexpectedEof { BinaryError::Truncated } else { err.into() }
}

/// Collects the frames of one snapshot into a [`Snapshot`] (tests, tools; the agent
/// compiles frames straight into its own tables instead).
#[derive(Default)]
pub struct SnapshotAssembler {
    snapshot: Option<Snapshot>,
}

impl SnapshotAssembler {
    /// Takes the next frame of a snapshot; returns the snapshot at its end frame.
    pub fn push(&mut self, frame: &Frame) -> Result<Option<Snapshot>, BinaryError> {
        let order = |what: &str| BinaryError::malformed("snapshot", format!("{what} before the head frame"));
        match frame.kind {
            FrameKind::Head => {
                let head = frame.head()?;
                let mut snapshot = Snapshot::new(head.revision, head.generated_at);
                snapshot.protocol_version = head.protocol_version;
                snapshot.requires = head.requires;
                self.snapshot = Some(snapshot);
            }
            FrameKind::Catalog => {
                let catalog = frame.catalog()?;
                let snapshot = self.snapshot.as_mut().ok_or_else(|| order("catalog"))?;
                snapshot.apis = catalog.apis;
                snapshot.plans = catalog.plans;
                snapshot.routing = catalog.routing;
                snapshot.mocks = catalog.mocks;
            }
            FrameKind::Applications => {
                let snapshot = self.snapshot.as_mut().ok_or_else(|| order("applications"))?;
                for record in frame.applications() {
                    let record = record?;
                    let plan = snapshot.plans.get(record.plan as usize).ok_or_else(|| {
                        BinaryError::malformed("application", format!("plan index {} out of range", record.plan))
                    })?;
                    snapshot.applications.push(Application {
                        id: record.id,
                        plan_id: plan.id,
                        state: record.state,
                        app_id: record.app_id.map(str::to_owned),
                    });
                }
            }
            FrameKind::Credentials => {
                let snapshot = self.snapshot.as_mut().ok_or_else(|| order("credentials"))?;
                for record in frame.credentials()? {
                    let record = record?;
                    let app = snapshot.applications.get(record.application as usize).ok_or_else(|| {
                        BinaryError::malformed(
                            "credential",
                            format!("application index {} out of range", record.application),
                        )
                    })?;
                    snapshot.credentials.push(Credential {
                        hash: KeyHash(record.hash),
                        kind: record.kind,
                        application_id: app.id,
                        expires_at: record.expires_at,
                    });
                }
            }
            FrameKind::Usage => {
                let usage = frame.usage()?;
                self.snapshot.as_mut().ok_or_else(|| order("usage"))?.usage.extend(usage);
            }
            FrameKind::End => {
                let end = frame.end()?;
                let snapshot = self.snapshot.take().ok_or_else(|| order("end"))?;
                if end.applications != snapshot.applications.len() as u64
                    || end.credentials != snapshot.credentials.len() as u64
                {
                    return Err(BinaryError::malformed("snapshot", "record counts differ from the end frame"));
                }
                return Ok(Some(snapshot));
            }
            FrameKind::Message | FrameKind::KeepAlive => {}
        }
        Ok(None)
    }
}

/// Encodes a whole snapshot, preamble included (the agent's disk form, the golden fixture).
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, BinaryError> {
    let mut out = preamble().to_vec();
    write_snapshot(snapshot, &mut out)?;
    Ok(out)
}

/// Writes a snapshot's frames (no preamble).
pub fn write_snapshot<W: Write>(snapshot: &Snapshot, out: W) -> Result<W, BinaryError> {
    let plans: std::collections::HashMap<Uuid, u32> =
        snapshot.plans.iter().enumerate().map(|(i, plan)| (plan.id, i as u32)).collect();
    let apps: std::collections::HashMap<Uuid, u32> =
        snapshot.applications.iter().enumerate().map(|(i, app)| (app.id, i as u32)).collect();
    let mut writer = SnapshotWriter::new(out);
    writer.head(&SnapshotHead {
        protocol_version: snapshot.protocol_version,
        revision: snapshot.revision,
        generated_at: snapshot.generated_at,
        requires: snapshot.requires.clone(),
    })?;
    writer.catalog(&snapshot.apis, &snapshot.plans, &snapshot.routing, &snapshot.mocks)?;
    for app in &snapshot.applications {
        let plan = *plans
            .get(&app.plan_id)
            .ok_or_else(|| BinaryError::malformed("application", format!("unknown plan {}", app.plan_id)))?;
        writer.application(&ApplicationRecord { id: app.id, plan, state: app.state, app_id: app.app_id.as_deref() })?;
    }
    for credential in &snapshot.credentials {
        let application = *apps.get(&credential.application_id).ok_or_else(|| {
            BinaryError::malformed("credential", format!("unknown application {}", credential.application_id))
        })?;
        writer.credential(&CredentialRecord {
            hash: credential.hash.0,
            kind: credential.kind,
            application,
            expires_at: credential.expires_at,
        })?;
    }
    writer.usage(&snapshot.usage)?;
    writer.finish()
}

/// Decodes one whole snapshot, preamble included.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, BinaryError> {
    let mut reader = FrameReader::new();
    reader.push(bytes);
    let mut assembler = SnapshotAssembler::default();
    while let Some(frame) = reader.next_frame()? {
        if let Some(snapshot) = assembler.push(&frame)? {
            return Ok(snapshot);
        }
    }
    Err(BinaryError::Truncated)
}
