//! HID report descriptors and the speakerphone's telephony controls, sans-IO.
//!
//! A USB speakerphone describes itself with a HID report descriptor (HID 1.11 §6.2.2). The
//! buttons the room cares about are on the Telephony usage page (0x0B): *Hook Switch* (0x20)
//! and *Phone Mute* (0x2F), each an On/Off Control that a device declares either **relative**
//! (a one-shot "toggle" each press) or **absolute** (the value is the state the device wants).
//! Its LEDs are on the LED page (0x08): *Mute* (0x09) and *Off-Hook* (0x17), set by output
//! reports. [`ReportDescriptor::parse`] reads a descriptor into fields; [`TelephonyMap`] finds
//! those usages; [`Speakerphone`] turns input reports into [`Action`]s and the room's
//! [`Indicators`] into the output reports that keep the device's LEDs equal to the room's state
//! (also when the room was muted from elsewhere), sending a report only when it changes.
//!
//! An absolute control's report is compared with the room's state, so a device that echoes the
//! LED state we set does not bounce the room back and forth.

use std::collections::BTreeMap;

use crate::indicators::Indicators;
use crate::Action;

/// The Telephony usage page.
pub const PAGE_TELEPHONY: u16 = 0x0B;
/// The LED usage page.
pub const PAGE_LED: u16 = 0x08;
/// Telephony: Hook Switch.
pub const USAGE_HOOK_SWITCH: u16 = 0x20;
/// Telephony: Phone Mute.
pub const USAGE_PHONE_MUTE: u16 = 0x2F;
/// LED: Mute.
pub const USAGE_LED_MUTE: u16 = 0x09;
/// LED: Off-Hook.
pub const USAGE_LED_OFF_HOOK: u16 = 0x17;

/// A usage: page and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Usage {
    /// Usage page.
    pub page: u16,
    /// Usage id.
    pub id: u16,
}

/// Which kind of report a field is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportKind {
    /// Device → host.
    Input,
    /// Host → device.
    Output,
    /// Both ways, on request.
    Feature,
}

/// One report field: `count` values of `size` bits from `bit_offset` (after the report ID byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Input, output or feature.
    pub kind: ReportKind,
    /// Report ID, 0 when the device does not number its reports.
    pub report_id: u8,
    /// Offset of the first value in the report data, in bits.
    pub bit_offset: u32,
    /// Bits per value.
    pub size: u32,
    /// Number of values.
    pub count: u32,
    /// Constant (padding).
    pub constant: bool,
    /// Variable (one usage per value) rather than array (values are usage indices).
    pub variable: bool,
    /// Relative rather than absolute.
    pub relative: bool,
    /// Logical minimum.
    pub logical_min: i32,
    /// Logical maximum.
    pub logical_max: i32,
    /// The usages: one per value for a variable field (the last repeats), the selectable
    /// usages for an array field.
    pub usages: Vec<Usage>,
    /// The top-level application collection's usage.
    pub application: Option<Usage>,
}

impl Field {
    /// The usage of value `i` of a variable field.
    pub fn usage_of(&self, i: u32) -> Option<Usage> {
        let i = i as usize;
        self.usages.get(i).or(self.usages.last()).copied()
    }
}

/// A parsed report descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReportDescriptor {
    /// All fields in order.
    pub fields: Vec<Field>,
    /// The device numbers its reports (a Report ID item appeared).
    pub numbered: bool,
    /// Length in bits of each (kind, report id).
    pub report_bits: BTreeMap<(ReportKind, u8), u32>,
}

/// A descriptor that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HID report descriptor, byte {offset}: {message}")]
pub struct DescriptorError {
    /// Byte offset of the bad item.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Default)]
struct Globals {
    usage_page: u16,
    logical_min: i32,
    logical_max: i32,
    report_size: u32,
    report_count: u32,
    report_id: u8,
}

fn unsigned(data: &[u8]) -> u32 {
    data.iter()
        .rev()
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn signed(data: &[u8]) -> i32 {
    match data.len() {
        0 => 0,
        1 => i32::from(data[0] as i8),
        2 => i32::from(i16::from_le_bytes([data[0], data[1]])),
        _ => unsigned(data) as i32,
    }
}

impl ReportDescriptor {
    /// Parses a report descriptor (short items; long items are skipped).
    pub fn parse(bytes: &[u8]) -> Result<Self, DescriptorError> {
        let mut out = ReportDescriptor::default();
        let mut g = Globals::default();
        let mut stack: Vec<Globals> = Vec::new();
        let mut usage_min: Option<u32> = None;
        let mut collections: Vec<Usage> = Vec::new();
        let mut application: Option<Usage> = None;
        let mut i = 0usize;
        let err = |offset: usize, message: &str| DescriptorError {
            offset,
            message: message.to_string(),
        };
        // A 4-byte usage carries its page in the high half; a shorter one takes the current
        // Usage Page (resolved when the main item comes, HID 1.11 §6.2.2.8).
        let full_usage = |v: u32, len: usize, page: u16| -> Usage {
            if len == 4 {
                Usage {
                    page: (v >> 16) as u16,
                    id: v as u16,
                }
            } else {
                Usage { page, id: v as u16 }
            }
        };
        let mut pending: Vec<(u32, usize)> = Vec::new(); // raw usages with their byte length
        let mut pending_range: Option<((u32, usize), (u32, usize))> = None;
        while i < bytes.len() {
            let prefix = bytes[i];
            if prefix == 0xFE {
                // Long item: size, tag, data.
                let size = *bytes
                    .get(i + 1)
                    .ok_or_else(|| err(i, "truncated long item"))?;
                i += 3 + usize::from(size);
                continue;
            }
            let len = match prefix & 3 {
                3 => 4,
                n => usize::from(n),
            };
            let typ = (prefix >> 2) & 3;
            let tag = prefix >> 4;
            let data = bytes
                .get(i + 1..i + 1 + len)
                .ok_or_else(|| err(i, "item runs past the end"))?;
            let value = unsigned(data);
            match typ {
                // Main
                0 => {
                    match tag {
                        0x8..=0xB if tag != 0xA => {
                            let kind = match tag {
                                0x8 => ReportKind::Input,
                                0x9 => ReportKind::Output,
                                _ => ReportKind::Feature,
                            };
                            let mut list: Vec<Usage> = pending
                                .iter()
                                .map(|(v, l)| full_usage(*v, *l, g.usage_page))
                                .collect();
                            if let Some(((lo, ll), (hi, _))) = pending_range {
                                let lo_u = full_usage(lo, ll, g.usage_page);
                                let hi_id = hi as u16;
                                if hi_id >= lo_u.id && hi_id - lo_u.id < 4096 {
                                    for id in lo_u.id..=hi_id {
                                        list.push(Usage {
                                            page: lo_u.page,
                                            id,
                                        });
                                    }
                                }
                            }
                            let bits = g
                                .report_size
                                .checked_mul(g.report_count)
                                .filter(|b| *b <= 65_536)
                                .ok_or_else(|| err(i, "report size × count too large"))?;
                            let key = (kind, g.report_id);
                            let offset = *out.report_bits.get(&key).unwrap_or(&0);
                            out.report_bits.insert(key, offset + bits);
                            out.fields.push(Field {
                                kind,
                                report_id: g.report_id,
                                bit_offset: offset,
                                size: g.report_size,
                                count: g.report_count,
                                constant: value & 1 != 0,
                                variable: value & 2 != 0,
                                relative: value & 4 != 0,
                                logical_min: g.logical_min,
                                logical_max: g.logical_max,
                                usages: list,
                                application,
                            });
                        }
                        0xA => {
                            let u = pending
                                .first()
                                .map(|(v, l)| full_usage(*v, *l, g.usage_page))
                                .unwrap_or(Usage {
                                    page: g.usage_page,
                                    id: 0,
                                });
                            if collections.is_empty() {
                                application = Some(u);
                            }
                            collections.push(u);
                        }
                        0xC => {
                            if collections.pop().is_none() {
                                return Err(err(i, "End Collection without a Collection"));
                            }
                            if collections.is_empty() {
                                application = None;
                            }
                        }
                        _ => {}
                    }
                    // Local items end with each main item.
                    pending.clear();
                    pending_range = None;
                    usage_min = None;
                }
                // Global
                1 => match tag {
                    0x0 => g.usage_page = value as u16,
                    0x1 => g.logical_min = signed(data),
                    0x2 => {
                        // A maximum written in fewer bytes than needed would be negative if
                        // read signed; HID says it is signed only when the minimum is.
                        g.logical_max = if g.logical_min >= 0 {
                            value as i32
                        } else {
                            signed(data)
                        }
                    }
                    0x7 => g.report_size = value,
                    0x8 => {
                        if value == 0 || value > 255 {
                            return Err(err(i, "Report ID must be 1 to 255"));
                        }
                        g.report_id = value as u8;
                        out.numbered = true;
                    }
                    0x9 => g.report_count = value,
                    0xA => stack.push(g.clone()),
                    0xB => {
                        g = stack.pop().ok_or_else(|| err(i, "Pop without a Push"))?;
                    }
                    _ => {}
                },
                // Local
                2 => match tag {
                    0x0 => pending.push((value, len)),
                    0x1 => usage_min = Some(value),
                    0x2 => {
                        if let Some(lo) = usage_min {
                            // Usage Minimum's byte length decides whether it carries a page.
                            let lo_len = if lo > 0xFFFF { 4 } else { 2 };
                            pending_range = Some(((lo, lo_len), (value, len)));
                        }
                    }
                    _ => {}
                },
                _ => return Err(err(i, "reserved item type")),
            }
            i += 1 + len;
        }
        if !collections.is_empty() {
            return Err(err(bytes.len(), "a Collection is not closed"));
        }
        Ok(out)
    }

    /// Bytes of a report's data (without the report ID byte).
    pub fn report_len(&self, kind: ReportKind, report_id: u8) -> usize {
        self.report_bits
            .get(&(kind, report_id))
            .map(|b| b.div_ceil(8) as usize)
            .unwrap_or(0)
    }
}

/// Where one value lives in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Report ID (0: unnumbered).
    pub report_id: u8,
    /// Bit offset in the report data.
    pub bit_offset: u32,
    /// Bits.
    pub size: u32,
    /// Relative (toggle) rather than absolute (state).
    pub relative: bool,
    /// Logical minimum (the "off" value).
    pub logical_min: i32,
    /// Logical maximum (the "on" value).
    pub logical_max: i32,
    /// Array field: the value that means this usage is present (else a variable field).
    pub array_value: Option<i32>,
    /// Array field: number of array entries to look at.
    pub array_count: u32,
}

/// The telephony controls found in a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelephonyMap {
    /// Phone Mute (input).
    pub mute: Option<Slot>,
    /// Hook Switch (input).
    pub hook: Option<Slot>,
    /// Mute LED (output).
    pub mute_led: Option<Slot>,
    /// Off-Hook LED (output).
    pub off_hook_led: Option<Slot>,
    /// The device numbers its reports.
    pub numbered: bool,
    /// Output report lengths (data bytes, without ID) per report ID.
    pub output_len: BTreeMap<u8, usize>,
}

fn find(desc: &ReportDescriptor, kind: ReportKind, usage: Usage) -> Option<Slot> {
    for f in desc.fields.iter().filter(|f| f.kind == kind && !f.constant) {
        if f.variable {
            for i in 0..f.count {
                if f.usage_of(i) == Some(usage) {
                    return Some(Slot {
                        report_id: f.report_id,
                        bit_offset: f.bit_offset + i * f.size,
                        size: f.size,
                        relative: f.relative,
                        logical_min: f.logical_min,
                        logical_max: f.logical_max,
                        array_value: None,
                        array_count: 0,
                    });
                }
            }
        } else if let Some(pos) = f.usages.iter().position(|u| *u == usage) {
            return Some(Slot {
                report_id: f.report_id,
                bit_offset: f.bit_offset,
                size: f.size,
                // A selector in an array is pressed while present: treat it as a one-shot.
                relative: true,
                logical_min: f.logical_min,
                logical_max: f.logical_max,
                array_value: Some(f.logical_min + pos as i32),
                array_count: f.count,
            });
        }
    }
    None
}

impl TelephonyMap {
    /// Finds Phone Mute, Hook Switch and the Mute and Off-Hook LEDs.
    pub fn from_descriptor(desc: &ReportDescriptor) -> Self {
        let t = |id| Usage {
            page: PAGE_TELEPHONY,
            id,
        };
        let l = |id| Usage { page: PAGE_LED, id };
        let mut output_len = BTreeMap::new();
        for (kind, id) in desc.report_bits.keys() {
            if *kind == ReportKind::Output {
                output_len.insert(*id, desc.report_len(ReportKind::Output, *id));
            }
        }
        TelephonyMap {
            mute: find(desc, ReportKind::Input, t(USAGE_PHONE_MUTE)),
            hook: find(desc, ReportKind::Input, t(USAGE_HOOK_SWITCH)),
            mute_led: find(desc, ReportKind::Output, l(USAGE_LED_MUTE)),
            off_hook_led: find(desc, ReportKind::Output, l(USAGE_LED_OFF_HOOK)),
            numbered: desc.numbered,
            output_len,
        }
    }

    /// A speakerphone has at least one telephony button or LED.
    pub fn is_speakerphone(&self) -> bool {
        self.mute.is_some() || self.hook.is_some() || self.mute_led.is_some()
    }
}

fn read_bits(data: &[u8], offset: u32, size: u32) -> Option<u32> {
    if size == 0 || size > 32 {
        return None;
    }
    let mut v: u64 = 0;
    for b in 0..size {
        let bit = offset + b;
        let byte = *data.get((bit / 8) as usize)?;
        if byte >> (bit % 8) & 1 != 0 {
            v |= 1 << b;
        }
    }
    Some(v as u32)
}

fn write_bits(data: &mut [u8], offset: u32, size: u32, value: u32) {
    for b in 0..size.min(32) {
        let bit = offset + b;
        if let Some(byte) = data.get_mut((bit / 8) as usize) {
            let mask = 1u8 << (bit % 8);
            if value >> b & 1 != 0 {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

fn sign_extend(v: u32, size: u32, signed: bool) -> i32 {
    if signed && size < 32 && v >> (size - 1) & 1 != 0 {
        (v | (!0u32 << size)) as i32
    } else {
        v as i32
    }
}

impl Slot {
    /// Whether the usage is "on" in this report data (without report ID).
    fn is_on(&self, data: &[u8]) -> Option<bool> {
        match self.array_value {
            None => {
                let raw = read_bits(data, self.bit_offset, self.size)?;
                let v = sign_extend(raw, self.size, self.logical_min < 0);
                Some(v > 0)
            }
            Some(want) => {
                let mut any = false;
                for k in 0..self.array_count.max(1) {
                    let raw = read_bits(data, self.bit_offset + k * self.size, self.size)?;
                    any |= sign_extend(raw, self.size, self.logical_min < 0) == want;
                }
                Some(any)
            }
        }
    }
}

/// One output report to write: the ID (0 when unnumbered) and the data after it. Through
/// hidraw the bytes written are `[report_id] + data` (0 first for unnumbered devices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputReport {
    /// Report ID.
    pub report_id: u8,
    /// Data bytes.
    pub data: Vec<u8>,
}

impl OutputReport {
    /// The bytes to `write()` to a hidraw node.
    pub fn hidraw_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.data.len() + 1);
        v.push(self.report_id);
        v.extend_from_slice(&self.data);
        v
    }
}

/// One speakerphone's telephony logic.
#[derive(Debug, Clone)]
pub struct Speakerphone {
    map: TelephonyMap,
    last_mute: Option<bool>,
    last_hook: Option<bool>,
    room: Indicators,
    sent: BTreeMap<u8, Vec<u8>>,
}

impl Speakerphone {
    /// A speakerphone described by `map`, the room idle and unmuted until told otherwise.
    pub fn new(map: TelephonyMap) -> Self {
        Self {
            map,
            last_mute: None,
            last_hook: None,
            room: Indicators::default(),
            sent: BTreeMap::new(),
        }
    }

    /// Its telephony map.
    pub fn map(&self) -> &TelephonyMap {
        &self.map
    }

    /// An input report as read from hidraw (with its report ID first when numbered): the
    /// actions it asks for.
    pub fn input_report(&mut self, report: &[u8]) -> Vec<Action> {
        let (id, data) = if self.map.numbered {
            match report.split_first() {
                Some((id, rest)) => (*id, rest),
                None => return Vec::new(),
            }
        } else {
            (0, report)
        };
        let mut actions = Vec::new();
        if let Some(slot) = self.map.hook.filter(|s| s.report_id == id) {
            if let Some(on) = slot.is_on(data) {
                let before = self.last_hook.replace(on);
                if slot.relative {
                    if on && before != Some(true) {
                        actions.push(Action::JoinLeave);
                    }
                } else if before != Some(on) && on != self.room.off_hook() {
                    // Only a change of the device's own state counts: a report repeating
                    // what the room already is (an echo of our LED) does nothing.
                    actions.push(if on { Action::Join } else { Action::Leave });
                }
            }
        }
        if let Some(slot) = self.map.mute.filter(|s| s.report_id == id) {
            if let Some(on) = slot.is_on(data) {
                let before = self.last_mute.replace(on);
                if slot.relative {
                    if on && before != Some(true) {
                        actions.push(Action::MuteToggle);
                    }
                } else if before != Some(on) && on != self.room.muted {
                    actions.push(if on { Action::Mute } else { Action::Unmute });
                }
            }
        }
        actions
    }

    /// The room's state changed (or a device was just opened): the output reports to write
    /// so the LEDs show it, only those that differ from what was last written.
    pub fn indicators(&mut self, room: &Indicators) -> Vec<OutputReport> {
        self.room = *room;
        let mut reports: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
        let leds = [
            (self.map.mute_led, room.muted),
            (self.map.off_hook_led, room.off_hook()),
        ];
        for (slot, on) in leds {
            let Some(slot) = slot else { continue };
            let len = self
                .map
                .output_len
                .get(&slot.report_id)
                .copied()
                .unwrap_or(0);
            let buf = reports
                .entry(slot.report_id)
                .or_insert_with(|| vec![0u8; len]);
            let value = if on {
                slot.logical_max.max(1)
            } else {
                slot.logical_min.max(0)
            };
            write_bits(buf, slot.bit_offset, slot.size, value as u32);
        }
        let mut out = Vec::new();
        for (id, data) in reports {
            if self.sent.get(&id) != Some(&data) {
                self.sent.insert(id, data.clone());
                out.push(OutputReport {
                    report_id: id,
                    data,
                });
            }
        }
        out
    }

    /// Forget what was written (the device was reopened): the next [`Self::indicators`] writes
    /// every report again.
    pub fn resend(&mut self) {
        self.sent.clear();
        self.last_mute = None;
        self.last_hook = None;
    }
}

/// Report descriptors of a typical USB speakerphone, for tests and the uhid hardware tests.
pub mod sample {
    /// Input report 1: Hook Switch (bit 0), Phone Mute (bit 1), 6 bits padding. Output report
    /// 2: LEDs Off-Hook (bit 0), Mute (bit 1), Ring (bit 2), 5 bits padding. `mute_relative`
    /// and `hook_relative` choose each button's form (Data,Var,Rel 0x06 or Data,Var,Abs,NoPref
    /// 0x22).
    pub fn speakerphone(mute_relative: bool, hook_relative: bool) -> Vec<u8> {
        let flags = |rel: bool| if rel { 0x06 } else { 0x22 };
        vec![
            0x05,
            0x0B, // Usage Page (Telephony)
            0x09,
            0x05, // Usage (Headset)
            0xA1,
            0x01, // Collection (Application)
            0x85,
            0x01, //   Report ID (1)
            0x15,
            0x00, //   Logical Minimum (0)
            0x25,
            0x01, //   Logical Maximum (1)
            0x75,
            0x01, //   Report Size (1)
            0x95,
            0x01, //   Report Count (1)
            0x09,
            0x20, //   Usage (Hook Switch)
            0x81,
            flags(hook_relative), // Input
            0x09,
            0x2F, //   Usage (Phone Mute)
            0x81,
            flags(mute_relative), // Input
            0x75,
            0x06, //   Report Size (6)
            0x81,
            0x03, //   Input (Const,Var,Abs) padding
            0x85,
            0x02, //   Report ID (2)
            0x05,
            0x08, //   Usage Page (LEDs)
            0x75,
            0x01, //   Report Size (1)
            0x95,
            0x03, //   Report Count (3)
            0x09,
            0x17, //   Usage (Off-Hook)
            0x09,
            0x09, //   Usage (Mute)
            0x09,
            0x18, //   Usage (Ring)
            0x91,
            0x22, //   Output (Data,Var,Abs,NoPref)
            0x75,
            0x05, //   Report Size (5)
            0x95,
            0x01, //   Report Count (1)
            0x91,
            0x03, //   Output (Const,Var,Abs) padding
            0xC0, // End Collection
        ]
    }

    /// A USB keyboard's boot descriptor (no telephony): must not be taken for a speakerphone.
    pub fn keyboard() -> Vec<u8> {
        vec![
            0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x15, 0x00,
            0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01,
            0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01,
            0x75, 0x03, 0x91, 0x01, 0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x25, 0x65, 0x05, 0x07,
            0x19, 0x00, 0x29, 0x65, 0x81, 0x00, 0xC0,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn phone(mute_rel: bool, hook_rel: bool) -> Speakerphone {
        let d = ReportDescriptor::parse(&sample::speakerphone(mute_rel, hook_rel)).unwrap();
        Speakerphone::new(TelephonyMap::from_descriptor(&d))
    }

    #[test]
    fn parses_the_sample_speakerphone() {
        let d = ReportDescriptor::parse(&sample::speakerphone(true, false)).unwrap();
        assert!(d.numbered);
        assert_eq!(d.report_len(ReportKind::Input, 1), 1);
        assert_eq!(d.report_len(ReportKind::Output, 2), 1);
        let m = TelephonyMap::from_descriptor(&d);
        let mute = m.mute.unwrap();
        assert_eq!(
            (mute.report_id, mute.bit_offset, mute.relative),
            (1, 1, true)
        );
        let hook = m.hook.unwrap();
        assert_eq!(
            (hook.report_id, hook.bit_offset, hook.relative),
            (1, 0, false)
        );
        assert_eq!(m.off_hook_led.unwrap().bit_offset, 0);
        assert_eq!(m.mute_led.unwrap().bit_offset, 1);
        assert!(m.is_speakerphone());
        assert_eq!(
            d.fields[0].application,
            Some(Usage {
                page: PAGE_TELEPHONY,
                id: 0x05
            })
        );
    }

    #[test]
    fn a_keyboard_is_not_a_speakerphone() {
        let d = ReportDescriptor::parse(&sample::keyboard()).unwrap();
        assert!(!d.numbered);
        assert_eq!(d.report_len(ReportKind::Input, 0), 8);
        let m = TelephonyMap::from_descriptor(&d);
        assert!(!m.is_speakerphone(), "{m:?}");
    }

    #[test]
    fn relative_mute_toggles_on_each_press() {
        let mut p = phone(true, false);
        assert_eq!(p.input_report(&[1, 0b10]), vec![Action::MuteToggle]);
        assert_eq!(p.input_report(&[1, 0b00]), vec![]);
        assert_eq!(p.input_report(&[1, 0b10]), vec![Action::MuteToggle]);
        // A report for another ID is ignored.
        assert_eq!(p.input_report(&[3, 0xFF]), vec![]);
    }

    #[test]
    fn absolute_mute_sets_the_state_and_ignores_echoes() {
        let mut p = phone(false, false);
        assert_eq!(p.input_report(&[1, 0b10]), vec![Action::Mute]);
        // The room mutes: LED report. The device repeats "muted": nothing.
        let r = p.indicators(&Indicators {
            muted: true,
            ..Default::default()
        });
        assert_eq!(
            r,
            vec![OutputReport {
                report_id: 2,
                data: vec![0b10]
            }]
        );
        assert_eq!(p.input_report(&[1, 0b10]), vec![]);
        assert_eq!(p.input_report(&[1, 0b00]), vec![Action::Unmute]);
        // Room muted from D-Bus while the device says unmuted, then the device reports
        // unmuted again (unchanged): no action; the LED follows the room.
        let r = p.indicators(&Indicators {
            muted: true,
            ..Default::default()
        });
        assert_eq!(r, vec![]);
        assert_eq!(p.input_report(&[1, 0b00]), vec![]);
    }

    #[test]
    fn hook_switch_joins_and_leaves() {
        let mut p = phone(true, false);
        assert_eq!(p.input_report(&[1, 0b01]), vec![Action::Join]);
        let r = p.indicators(&Indicators {
            joining: true,
            ..Default::default()
        });
        assert_eq!(
            r,
            vec![OutputReport {
                report_id: 2,
                data: vec![0b01]
            }]
        );
        assert_eq!(p.input_report(&[1, 0b00]), vec![Action::Leave]);
        let mut p = phone(true, true);
        assert_eq!(p.input_report(&[1, 0b01]), vec![Action::JoinLeave]);
        assert_eq!(p.input_report(&[1, 0b00]), vec![]);
    }

    #[test]
    fn leds_are_written_only_when_they_change_and_again_after_reopen() {
        let mut p = phone(true, false);
        let idle = Indicators::default();
        assert_eq!(p.indicators(&idle).len(), 1, "first report always written");
        assert_eq!(p.indicators(&idle), vec![]);
        let call = Indicators {
            in_call: true,
            muted: true,
            ..Default::default()
        };
        assert_eq!(p.indicators(&call)[0].data, vec![0b11]);
        p.resend();
        assert_eq!(p.indicators(&call)[0].hidraw_bytes(), vec![2, 0b11]);
    }

    #[test]
    fn array_selectors_and_unnumbered_reports() {
        // Telephony buttons as an array (Usage Min Hook Switch .. Phone Mute), no report IDs,
        // 8-bit selector; LEDs as 16-bit page-qualified usages.
        let desc = [
            0x05, 0x0B, 0x09, 0x01, 0xA1, 0x01, // Telephony, Phone, Collection
            0x15, 0x00, 0x25, 0x10, 0x19, 0x20, 0x29, 0x2F, // min 0 max 16, usages 0x20..0x2F
            0x75, 0x08, 0x95, 0x01, 0x81, 0x00, // 1 × 8 bits, Input (Data,Array,Abs)
            0x25, 0x01, 0x75, 0x01, 0x95, 0x02, // 2 × 1 bit
            0x0B, 0x09, 0x00, 0x08, 0x00, // Usage (LED:Mute), 4-byte form
            0x0B, 0x17, 0x00, 0x08, 0x00, // Usage (LED:Off-Hook)
            0x91, 0x02, // Output (Data,Var,Abs)
            0x75, 0x06, 0x95, 0x01, 0x91, 0x03, 0xC0,
        ];
        let d = ReportDescriptor::parse(&desc).unwrap();
        let m = TelephonyMap::from_descriptor(&d);
        assert_eq!(m.mute.unwrap().array_value, Some(15));
        assert_eq!(m.hook.unwrap().array_value, Some(0));
        let mut p = Speakerphone::new(m);
        assert_eq!(p.input_report(&[15]), vec![Action::MuteToggle]);
        assert_eq!(p.input_report(&[0]), vec![Action::JoinLeave]);
        let r = p.indicators(&Indicators {
            muted: true,
            ..Default::default()
        });
        assert_eq!(r[0].hidraw_bytes(), vec![0, 0b01]);
    }

    #[test]
    fn broken_descriptors_are_errors_not_panics() {
        assert!(ReportDescriptor::parse(&[0xA1, 0x01]).is_err()); // unclosed
        assert!(ReportDescriptor::parse(&[0xC0]).is_err());
        assert!(ReportDescriptor::parse(&[0x26, 0x01]).is_err()); // truncated
        assert!(ReportDescriptor::parse(&[0x85, 0x00]).is_err()); // report id 0
        assert!(ReportDescriptor::parse(&[0xB4]).is_err()); // pop
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(d) = ReportDescriptor::parse(&bytes) {
                let m = TelephonyMap::from_descriptor(&d);
                let mut p = Speakerphone::new(m);
                let _ = p.input_report(&bytes);
                let _ = p.indicators(&Indicators { muted: true, in_call: true, ..Default::default() });
            }
        }

        /// Whatever sequence of room states, the last LED report written equals the last state.
        #[test]
        fn leds_follow_the_room(states in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 1..30)) {
            let mut p = phone(false, false);
            let mut led = None;
            for (in_call, muted, joining) in &states {
                for r in p.indicators(&Indicators { in_call: *in_call, muted: *muted, joining: *joining, ..Default::default() }) {
                    led = Some(r.data[0]);
                }
            }
            let (in_call, muted, joining) = *states.last().unwrap();
            let want = u8::from(in_call || joining) | (u8::from(muted) << 1);
            prop_assert_eq!(led, Some(want));
        }
    }
}
