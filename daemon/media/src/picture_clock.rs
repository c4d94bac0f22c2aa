//! A wall-clock timestamp drawn into the picture, so that glass-to-glass latency can be read
//! back wherever the picture is decoded (the receiver here, a browser canvas in benchmarks).
//!
//! Format: a row of 48 square blocks along the top-left edge of the luma plane, each black
//! (Y=16) for 0 or white (Y=235) for 1, most significant bit first:
//!
//! | bits | meaning |
//! |---|---|
//! | 0–7 | sync pattern `0b1011_0010` |
//! | 8–39 | milliseconds since the Unix epoch, modulo 2³², big-endian |
//! | 40–47 | checksum: XOR of the four timestamp bytes |
//!
//! A block is `width / 48` pixels wide and as tall (at least 2 pixels). A reader samples each
//! block's centre and thresholds at mid-grey (in RGB, the mean of R, G and B), so the code
//! survives lossy encoding and scaling. The moving test pattern carries it; cameras do not.

use std::time::{SystemTime, UNIX_EPOCH};

/// Number of blocks.
pub const BLOCKS: u32 = 48;
const SYNC: u8 = 0b1011_0010;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// The current wall clock in the code's unit (ms since the epoch, modulo 2³²).
pub fn now_ms() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u32)
        .unwrap_or(0)
}

/// The side of one block, in pixels, for a picture `width` pixels wide (0 when too narrow).
pub fn block_size(width: u32) -> u32 {
    let size = width / BLOCKS;
    if size < 2 {
        0
    } else {
        size
    }
}

fn bits(ms: u32) -> u64 {
    let b = ms.to_be_bytes();
    let checksum = b[0] ^ b[1] ^ b[2] ^ b[3];
    (u64::from(SYNC) << 40) | (u64::from(ms) << 8) | u64::from(checksum)
}

/// Draws `ms` into a luma (Y) plane of `width`×`height` pixels with `stride` bytes per row.
/// Does nothing if the picture is too small.
pub fn stamp(luma: &mut [u8], stride: usize, width: u32, height: u32, ms: u32) {
    let size = block_size(width);
    if size == 0 || height < size {
        return;
    }
    let code = bits(ms);
    let size = size as usize;
    for row in 0..size {
        let line = &mut luma[row * stride..row * stride + size * BLOCKS as usize];
        for block in 0..BLOCKS as usize {
            let bit = (code >> (BLOCKS as usize - 1 - block)) & 1;
            let value = if bit == 1 { WHITE } else { BLACK };
            line[block * size..(block + 1) * size].fill(value);
        }
    }
}

/// Reads a timestamp from a luma plane; `None` if the picture carries no valid code.
pub fn read(luma: &[u8], stride: usize, width: u32, height: u32) -> Option<u32> {
    let size = block_size(width);
    if size == 0 || height < size {
        return None;
    }
    let size = size as usize;
    let centre_row = size / 2;
    let mut code: u64 = 0;
    for block in 0..BLOCKS as usize {
        let x = block * size + size / 2;
        let value = *luma.get(centre_row * stride + x)?;
        code = (code << 1) | u64::from(value >= 128);
    }
    let ms = (code >> 8) as u32;
    (code == bits(ms)).then_some(ms)
}

/// Milliseconds from `stamped` (a value read from a picture) to `now`, if plausible (under a
/// minute; clocks that disagree give `None`).
pub fn latency_ms(stamped: u32, now: u32) -> Option<u32> {
    let age = now.wrapping_sub(stamped);
    (age < 60_000).then_some(age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_picture_reads_back_its_time() {
        let (w, h, stride) = (640u32, 360u32, 704usize);
        let mut y = vec![100u8; stride * h as usize];
        for ms in [0, 1, 1_234_567, u32::MAX] {
            stamp(&mut y, stride, w, h, ms);
            assert_eq!(read(&y, stride, w, h), Some(ms));
        }
    }

    #[test]
    fn the_code_survives_noise_but_not_a_plain_picture() {
        let (w, h, stride) = (320u32, 240u32, 320usize);
        let mut y = vec![128u8; stride * h as usize];
        assert_eq!(read(&y, stride, w, h), None, "plain grey carries no code");
        stamp(&mut y, stride, w, h, 987_654);
        for (i, v) in y.iter_mut().enumerate() {
            // ±40 of noise, as after a low-bitrate encode.
            *v = v.saturating_add((i % 41) as u8).saturating_sub(20);
        }
        assert_eq!(read(&y, stride, w, h), Some(987_654));
        // A corrupted timestamp bit fails the checksum.
        let size = block_size(w) as usize;
        let x = 20 * size + size / 2;
        let row = size / 2;
        y[row * stride + x] = 255 - y[row * stride + x];
        assert_eq!(read(&y, stride, w, h), None);
    }

    #[test]
    fn too_narrow_pictures_are_left_alone() {
        let mut y = vec![7u8; 64 * 64];
        stamp(&mut y, 64, 64, 64, 5);
        assert!(y.iter().all(|v| *v == 7));
        assert_eq!(read(&y, 64, 64, 64), None);
    }

    #[test]
    fn latency_handles_wrap_around_and_rejects_clock_disagreement() {
        assert_eq!(latency_ms(u32::MAX - 9, 10), Some(20));
        assert_eq!(latency_ms(1000, 1040), Some(40));
        assert_eq!(latency_ms(1040, 1000), None);
    }
}
