//! Just enough RTP (RFC 3550) and H.264 payload (RFC 6184) parsing to count what the engine
//! sends: frames (marker bit), bytes and keyframes. Used by the sender's counters and by tests.

/// The fields of an RTP header the engine looks at, and where the payload starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit: for video, the last packet of a frame.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp (90 kHz for video, 48 kHz for Opus).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload in the packet.
    pub payload_offset: usize,
    /// Length of the payload (padding removed).
    pub payload_len: usize,
}

impl RtpHeader {
    /// Parses the header of an RTP version 2 packet; `None` if it is not one.
    pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        let csrc_count = usize::from(packet[0] & 0x0f);
        let has_extension = packet[0] & 0x10 != 0;
        let has_padding = packet[0] & 0x20 != 0;
        let mut offset = 12 + 4 * csrc_count;
        if has_extension {
            let ext = packet.get(offset..offset + 4)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            offset += 4 + 4 * words;
        }
        let mut end = packet.len();
        if has_padding {
            let pad = usize::from(*packet.last()?);
            end = end.checked_sub(pad)?;
        }
        if offset > end {
            return None;
        }
        Some(RtpHeader {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            payload_offset: offset,
            payload_len: end - offset,
        })
    }

    /// The payload bytes of `packet` (which this header was parsed from).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        &packet[self.payload_offset..self.payload_offset + self.payload_len]
    }
}

/// The payload type of the primary encoding inside a RED packet (RFC 2198): the block
/// headers are 4 bytes with the F bit set, then 1 byte without it for the primary. `None`
/// for an empty or truncated payload.
pub fn red_primary_payload_type(payload: &[u8]) -> Option<u8> {
    let mut offset = 0;
    loop {
        let header = *payload.get(offset)?;
        if header & 0x80 == 0 {
            return Some(header & 0x7f);
        }
        offset += 4;
    }
}

const NAL_IDR: u8 = 5;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// Whether an H.264 RTP payload (packetization-mode 1) carries the start of an IDR picture:
/// a single IDR NAL unit, a STAP-A containing one, or the first fragment of a FU-A of one.
pub fn h264_payload_starts_idr(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_IDR => true,
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if size == 0 || rest.len() < 2 + size {
                    return false;
                }
                if rest[2] & 0x1f == NAL_IDR {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == NAL_IDR),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80,
            if marker { 0x80 | 96 } else { 96 },
            0,
            7,
            0,
            0,
            0,
            9,
            1,
            2,
            3,
            4,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn parses_header_fields_and_payload() {
        let p = packet(true, &[0x65, 1, 2]);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 96);
        assert_eq!(h.sequence, 7);
        assert_eq!(h.timestamp, 9);
        assert_eq!(h.ssrc, 0x01020304);
        assert_eq!(h.payload(&p), &[0x65, 1, 2]);
    }

    #[test]
    fn finds_the_primary_encoding_of_a_red_payload() {
        // One redundant block (F=1, PT 111, offset, length 3), then the primary (PT 111).
        let red = [0x80 | 111, 0x03, 0xc0, 0x03, 111, 1, 2, 3, 4, 5, 6];
        assert_eq!(red_primary_payload_type(&red), Some(111));
        // No redundant block (livekit-client's first packets, and after silence).
        assert_eq!(red_primary_payload_type(&[110, 1, 2]), Some(110));
        assert_eq!(red_primary_payload_type(&[]), None);
        assert_eq!(red_primary_payload_type(&[0x80 | 111, 0, 0]), None);
    }

    #[test]
    fn rejects_what_is_not_rtp() {
        assert!(RtpHeader::parse(&[0u8; 8]).is_none());
        assert!(RtpHeader::parse(&[0x40; 20]).is_none());
    }

    #[test]
    fn recognises_idr_in_single_stap_a_and_fu_a_payloads() {
        assert!(h264_payload_starts_idr(&[0x65, 0]));
        assert!(!h264_payload_starts_idr(&[0x41, 0]));
        // STAP-A with SPS (7), PPS (8), IDR (5).
        let stap = [0x78, 0, 2, 0x67, 0, 0, 2, 0x68, 0, 0, 2, 0x65, 0];
        assert!(h264_payload_starts_idr(&stap));
        let stap_no_idr = [0x78, 0, 2, 0x67, 0, 0, 2, 0x68, 0];
        assert!(!h264_payload_starts_idr(&stap_no_idr));
        // FU-A start fragment of an IDR, and a middle fragment.
        assert!(h264_payload_starts_idr(&[0x7c, 0x85, 0]));
        assert!(!h264_payload_starts_idr(&[0x7c, 0x05, 0]));
    }
}
