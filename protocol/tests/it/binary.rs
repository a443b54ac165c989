//! The binary golden fixture: `snapshot.bin` is `snapshot.json` in the binary encoding.
//! Both directions are checked, so neither encoding can drift from the other.

use tollgate_protocol::Snapshot;
use tollgate_protocol::binary::{
    BinaryError, FORMAT_VERSION, FrameKind, FrameReader, decode_snapshot, encode_snapshot, message_frame, preamble,
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

#[test]
fn the_binary_fixture_decodes_to_the_json_fixture() {
    let (snapshot, bytes) = fixtures();
    assert_eq!(decode_snapshot(&bytes).expect("decode"), snapshot);
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
    let (snapshot, bytes) = fixtures();
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
    assert_eq!(decoded, Some(snapshot));
    assert_eq!(reader.pending(), 0);
}

#[test]
fn an_unknown_format_version_is_refused_by_name() {
    let (_, mut bytes) = fixtures();
    bytes[4..8].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = decode_snapshot(&bytes).expect_err("refused");
    assert!(matches!(err, BinaryError::UnsupportedVersion { found } if found == FORMAT_VERSION + 1));
    assert_eq!(
        err.to_string(),
        format!("binary snapshot format version {} is not supported (this build reads version 1)", FORMAT_VERSION + 1)
    );
    assert!(matches!(decode_snapshot(b"{\"type\":\"snapshot\"}"), Err(BinaryError::BadMagic)));
}

#[test]
fn a_cut_snapshot_is_not_taken_for_a_whole_one() {
    let (_, bytes) = fixtures();
    for cut in [bytes.len() - 1, bytes.len() - 17, bytes.len() / 2, 9] {
        assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
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
    assert!(matches!(read_frame(&mut &bytes[..]), Err(BinaryError::Truncated)));
    // A complete frame still reads.
    let mut whole = vec![FrameKind::Applications as u8];
    whole.extend_from_slice(&3u32.to_le_bytes());
    whole.extend_from_slice(b"abc");
    let frame = read_frame(&mut &whole[..]).unwrap().unwrap();
    assert_eq!(frame.payload, b"abc");
}
