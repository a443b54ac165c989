//! The binary golden fixtures: `snapshot.bin` is `snapshot.json` in the binary encoding
//! (format version 3). Both directions are checked, so neither encoding can drift from the
//! other. `snapshot.v2.bin` and `snapshot.v1.bin` are the same snapshot in format versions
//! 2 and 1, which are only read now: they must keep decoding to the same snapshot.

use tollgate_protocol::Snapshot;
use tollgate_protocol::binary::{
    BINARY_MEDIA_TYPE, BinaryError, CREDENTIAL_EXPIRY_LEN, CREDENTIAL_RECORD_LEN, FORMAT_VERSION, FormatVersion,
    FrameKind, FrameReader, accepts_binary, decode_snapshot, encode_snapshot, message_frame, preamble,
};

use crate::golden::{fixture_path, round_trip, updating};

fn fixtures() -> (Snapshot, Vec<u8>) {
    let snapshot: Snapshot = round_trip("snapshot.json");
    let path = fixture_path("snapshot.bin");
    if updating() {
        std::fs::write(&path, encode_snapshot(&snapshot).expect("encode")).expect("write fixture");
    }
    (snapshot, std::fs::read(&path).expect("read snapshot.bin"))
}

fn v1_fixture() -> Vec<u8> {
    std::fs::read(fixture_path("snapshot.v1.bin")).expect("read snapshot.v1.bin")
}

fn v2_fixture() -> Vec<u8> {
    std::fs::read(fixture_path("snapshot.v2.bin")).expect("read snapshot.v2.bin")
}

#[test]
fn the_binary_fixture_decodes_to_the_json_fixture() {
    let (snapshot, bytes) = fixtures();
    assert_eq!(bytes[4..8], 3u32.to_le_bytes(), "snapshot.bin is format version 3");
    assert_eq!(decode_snapshot(&bytes).expect("decode"), snapshot);
}

#[test]
fn the_older_fixtures_still_decode_to_the_json_fixture() {
    let (snapshot, v3) = fixtures();
    let (v1, v2) = (v1_fixture(), v2_fixture());
    assert_eq!(v1[4..8], 1u32.to_le_bytes(), "snapshot.v1.bin is format version 1");
    assert_eq!(v2[4..8], 2u32.to_le_bytes(), "snapshot.v2.bin is format version 2");
    assert_eq!(decode_snapshot(&v1).expect("decode v1"), snapshot);
    assert_eq!(decode_snapshot(&v2).expect("decode v2"), snapshot);
    // The same snapshot, smaller each time: 4 bytes a credential and the application
    // records in version 2, 8 bytes a key without an expiry in version 3.
    assert!(v2.len() < v1.len(), "v2 {} bytes, v1 {} bytes", v2.len(), v1.len());
    let never_expire = snapshot.credentials.iter().filter(|c| c.expires_at.is_none()).count();
    assert_eq!(v2.len() - v3.len(), 8 * never_expire, "v3 {} bytes, v2 {} bytes", v3.len(), v2.len());
}

#[test]
fn records_take_18_and_37_bytes_and_an_expiry_8_more() {
    let (snapshot, bytes) = fixtures();
    let mut reader = FrameReader::new();
    reader.push(&bytes);
    let (mut apps, mut credentials) = (0, 0);
    while let Some(frame) = reader.next_frame().expect("frame") {
        assert_eq!(frame.format, FormatVersion::V3);
        match frame.kind {
            FrameKind::Applications => apps += frame.payload.len(),
            FrameKind::Credentials => credentials += frame.payload.len(),
            _ => {}
        }
    }
    // Fewer than 128 plans and app_ids under 128 bytes: one varint byte each.
    let expected_apps: usize =
        snapshot.applications.iter().map(|a| 18 + a.app_id.as_ref().map_or(0, |id| 1 + id.len())).sum();
    assert_eq!(apps, expected_apps);
    assert_eq!((CREDENTIAL_RECORD_LEN, CREDENTIAL_EXPIRY_LEN), (37, 8));
    let expected_credentials: usize =
        snapshot.credentials.iter().map(|c| if c.expires_at.is_some() { 45 } else { 37 }).sum();
    assert_eq!(credentials, expected_credentials);
}

#[test]
fn plan_indices_past_one_varint_byte_round_trip() {
    let (mut snapshot, _) = fixtures();
    let template = snapshot.plans[0].clone();
    for i in 0..300u128 {
        let mut plan = template.clone();
        plan.id = uuid::Uuid::from_u128(0xABCD_0000 + i);
        snapshot.plans.push(plan);
    }
    // Indices 1 (one byte), 130 (two bytes) and 300 (two bytes).
    let last = snapshot.plans.len() - 1;
    snapshot.applications[0].plan_id = snapshot.plans[130].id;
    snapshot.applications[1].plan_id = snapshot.plans[last].id;
    let bytes = encode_snapshot(&snapshot).expect("encode");
    assert_eq!(decode_snapshot(&bytes).expect("decode"), snapshot);
}

#[test]
fn an_expiry_is_kept_to_the_second_rounded_down() {
    let (mut snapshot, _) = fixtures();
    let with_expiry = snapshot.credentials.iter().position(|c| c.expires_at.is_some()).expect("an expiring key");
    let at: jiff::Timestamp = "2025-04-01T00:00:00.999Z".parse().unwrap();
    snapshot.credentials[with_expiry].expires_at = Some(at);
    let before_epoch: jiff::Timestamp = "1969-12-31T23:59:59.5Z".parse().unwrap();
    snapshot.credentials[0].expires_at = Some(before_epoch);
    let decoded = decode_snapshot(&encode_snapshot(&snapshot).expect("encode")).expect("decode");
    assert_eq!(decoded.credentials[with_expiry].expires_at, Some("2025-04-01T00:00:00Z".parse().unwrap()));
    assert_eq!(decoded.credentials[0].expires_at, Some("1969-12-31T23:59:59Z".parse().unwrap()));
}

#[test]
fn the_accept_header_asks_for_version_3_by_name() {
    assert!(accepts_binary(BINARY_MEDIA_TYPE));
    assert!(accepts_binary("application/x-ndjson;q=0.5, application/vnd.tollgate.config+bin;version=\"3\""));
    assert!(accepts_binary("Application/Vnd.Tollgate.Config+Bin; Version=3; q=0.9"));
    // What agents reading only older versions send: they get NDJSON, not a stream they refuse.
    assert!(!accepts_binary("application/vnd.tollgate.config+bin, application/x-ndjson;q=0.5"));
    assert!(!accepts_binary("application/vnd.tollgate.config+bin; version=1"));
    assert!(!accepts_binary("application/vnd.tollgate.config+bin; version=2"));
    assert!(!accepts_binary("application/vnd.tollgate.config+bin; version=4"));
    assert!(!accepts_binary("application/vnd.tollgate.config+bin; version=3; q=0"));
    assert!(!accepts_binary("application/x-ndjson"));
}

#[test]
fn the_json_fixture_encodes_to_the_binary_fixture() {
    let (snapshot, bytes) = fixtures();
    assert_eq!(encode_snapshot(&snapshot).expect("encode"), bytes, "regenerate with UPDATE_FIXTURES=1 if intended");
}

#[test]
fn the_fixture_exercises_every_record_field() {
    let (snapshot, _) = fixtures();
    assert!(snapshot.credentials.iter().any(|c| c.expires_at.is_some()));
    assert!(snapshot.credentials.iter().any(|c| c.expires_at.is_none()));
    assert!(snapshot.applications.iter().any(|a| a.app_id.is_some()));
    assert!(snapshot.applications.iter().any(|a| a.app_id.is_none()));
}

#[test]
fn frames_can_arrive_a_byte_at_a_time() {
    let (snapshot, v3) = fixtures();
    for bytes in [v3, v2_fixture(), v1_fixture()] {
        let mut reader = FrameReader::new();
        let mut assembler = tollgate_protocol::binary::SnapshotAssembler::default();
        let mut decoded = None;
        for byte in &bytes {
            reader.push(std::slice::from_ref(byte));
            while let Some(frame) = reader.next_frame().expect("frame") {
                if let Some(done) = assembler.push(&frame).expect("assemble") {
                    decoded = Some(done);
                }
            }
        }
        assert_eq!(decoded.as_ref(), Some(&snapshot));
        assert_eq!(reader.pending(), 0);
    }
}

#[test]
fn an_unknown_format_version_is_refused_by_name() {
    let (_, mut bytes) = fixtures();
    bytes[4..8].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = decode_snapshot(&bytes).expect_err("refused");
    assert!(matches!(err, BinaryError::UnsupportedVersion { found } if found == FORMAT_VERSION + 1));
    assert_eq!(err.to_string(), "binary snapshot format version 4 is not supported (this build reads versions 1 to 3)");
    assert!(matches!(decode_snapshot(b"{\"type\":\"snapshot\"}"), Err(BinaryError::BadMagic)));
}

#[test]
fn a_cut_snapshot_is_not_taken_for_a_whole_one() {
    let (_, bytes) = fixtures();
    for bytes in [bytes, v2_fixture(), v1_fixture()] {
        for cut in [bytes.len() - 1, bytes.len() - 17, bytes.len() / 2, 9] {
            assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}

#[test]
fn messages_travel_as_json_frames() {
    let delta: tollgate_protocol::ConfigMessage = round_trip("delta.json");
    let mut stream = preamble().to_vec();
    stream.extend(message_frame(&delta).expect("frame"));
    let mut reader = FrameReader::new();
    reader.push(&stream);
    let frame = reader.next_frame().expect("frame").expect("whole");
    assert_eq!(frame.kind, FrameKind::Message);
    assert_eq!(frame.message().expect("message"), delta);
}

#[test]
fn a_file_frame_claiming_more_than_it_holds_is_truncated() {
    use tollgate_protocol::binary::read_frame;
    // A frame header claiming 200 MB, followed by 3 bytes: a corrupt or cut config.bin.
    let mut bytes = vec![FrameKind::Applications as u8];
    bytes.extend_from_slice(&(200u32 * 1024 * 1024).to_le_bytes());
    bytes.extend_from_slice(b"abc");
    assert!(matches!(read_frame(&mut &bytes[..], FormatVersion::V2), Err(BinaryError::Truncated)));
    // A complete frame still reads.
    let mut whole = vec![FrameKind::Applications as u8];
    whole.extend_from_slice(&3u32.to_le_bytes());
    whole.extend_from_slice(b"abc");
    let frame = read_frame(&mut &whole[..], FormatVersion::V2).unwrap().unwrap();
    assert_eq!(frame.payload, b"abc");
}

#[test]
fn mocks_travel_in_the_catalog_frame() {
    let snapshot: Snapshot = round_trip("snapshot_with_mocks.json");
    let bytes = encode_snapshot(&snapshot).expect("encode");
    assert_eq!(tollgate_protocol::binary::decode_snapshot(&bytes).expect("decode"), snapshot);
}

#[test]
fn a_credential_cut_inside_its_expiry_is_refused() {
    let (snapshot, bytes) = fixtures();
    let mut reader = FrameReader::new();
    reader.push(&bytes);
    let frame = std::iter::from_fn(|| reader.next_frame().expect("frame"))
        .find(|frame| frame.kind == FrameKind::Credentials)
        .expect("a credentials frame");
    let with_expiry = snapshot.credentials.iter().position(|c| c.expires_at.is_some()).expect("an expiring key");
    let start: usize =
        snapshot.credentials[..with_expiry].iter().map(|c| 37 + 8 * c.expires_at.is_some() as usize).sum();
    // The record up to the middle of its expiry: a whole number of nothing in particular.
    let mut cut = frame.clone();
    cut.payload.truncate(start + 37 + 3);
    let results: Vec<_> = cut.credentials().expect("variable-length records").collect();
    assert_eq!(results.len(), with_expiry + 1, "the records before it, then one refusal");
    let err = results.last().unwrap().as_ref().expect_err("cut short");
    assert_eq!(err.to_string(), "malformed credential: record cut short");
    // A flag this version does not know is refused too.
    let mut flagged = frame.clone();
    flagged.payload[36] |= 0x80;
    let err = flagged.credentials().unwrap().next().unwrap().expect_err("unknown flag");
    assert!(err.to_string().contains("unknown flags"), "{err}");
}
