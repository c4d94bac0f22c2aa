//! Cameras through V4L2: which capture devices there are, their formats and frame sizes, the
//! best format for the configured size ([`choose_format`], sans-IO), and their controls
//! (brightness, contrast…, zoom/pan/tilt when the camera has them).
//!
//! Controls are listed with our own `VIDIOC_QUERY_EXT_CTRL` loop rather than
//! `v4l::Device::query_controls`, which panics on control types it does not know (vivid has
//! several); compound controls are skipped, they are not settings a room changes.

// The workspace denies unsafe code; this file needs it for
// V4L2 ioctls through v4l-sys; each unsafe block says why it is sound (SAFETY).
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::path::{Path, PathBuf};

use v4l::v4l2;
use v4l::v4l_sys;
use v4l::video::Capture;

/// A camera error: the device and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("camera {path}: {message}")]
pub struct CameraError {
    /// The device node.
    pub path: String,
    /// What went wrong and what to do.
    pub message: String,
}

impl CameraError {
    fn io(path: &Path, what: &str, e: io::Error) -> Self {
        CameraError {
            path: path.display().to_string(),
            message: crate::describe_open_error(what, &e),
        }
    }
    fn msg(path: &Path, message: impl Into<String>) -> Self {
        CameraError {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

/// One capture device.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// `/dev/videoN`.
    pub path: PathBuf,
    /// The card name (`vivid`, `HD Pro Webcam C920`).
    pub name: String,
    /// Driver (`vivid`, `uvcvideo`).
    pub driver: String,
    /// Bus (`platform:vivid-000`, `usb-0000:00:14.0-1`).
    pub bus: String,
    /// Capture formats with their sizes.
    pub formats: Vec<FormatInfo>,
}

/// One pixel format.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatInfo {
    /// FourCC, e.g. `YUYV`, `MJPG`, `NV12`, `H264`.
    pub fourcc: String,
    /// The driver's description.
    pub description: String,
    /// Frame sizes (a stepwise range is sampled: its minimum, maximum and common sizes).
    pub sizes: Vec<SizeInfo>,
}

/// One frame size and its best frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeInfo {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Highest frame rate offered at this size, when the driver says.
    pub max_fps: Option<f64>,
}

/// The format the capture pipeline should ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatChoice {
    /// FourCC.
    pub fourcc: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Frame rate at that size, when known.
    pub fps: Option<f64>,
}

/// How much we like a pixel format: raw formats need no decoding; MJPG is what USB 2 cameras
/// offer at high sizes; H.264 from the camera is last (re-encoded anyway). Unknown formats
/// (Bayer, vendor-specific) are not chosen.
fn format_rank(fourcc: &str) -> Option<u8> {
    match fourcc {
        "NV12" | "YUYV" | "YU12" | "I420" | "UYVY" | "YV12" | "NV21" | "NV16" => Some(0),
        "RGB3" | "BGR3" | "XR24" | "AR24" | "RGBP" => Some(1),
        "MJPG" | "JPEG" => Some(2),
        "H264" => Some(3),
        _ => None,
    }
}

/// The best format for a wanted size and frame rate: first one that covers the size at the
/// frame rate, then the nearest size (smallest that covers it, else the largest), then the
/// format we like best (raw, then MJPG, then H.264).
pub fn choose_format(
    formats: &[FormatInfo],
    width: u32,
    height: u32,
    fps: f64,
) -> Option<FormatChoice> {
    let mut best: Option<((u8, u8, i64, u8), FormatChoice)> = None;
    for f in formats {
        let Some(rank) = format_rank(&f.fourcc) else {
            continue;
        };
        for s in &f.sizes {
            let covers = s.width >= width && s.height >= height;
            let fps_ok = s.max_fps.is_none_or(|m| m + 0.01 >= fps);
            let area = i64::from(s.width) * i64::from(s.height);
            let score = (
                u8::from(!covers),
                u8::from(!fps_ok),
                if covers { area } else { -area },
                rank,
            );
            if best.as_ref().is_none_or(|(b, _)| score < *b) {
                best = Some((
                    score,
                    FormatChoice {
                        fourcc: f.fourcc.clone(),
                        width: s.width,
                        height: s.height,
                        fps: s.max_fps,
                    },
                ));
            }
        }
    }
    best.map(|(_, c)| c)
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// The capture nodes present now with their card names, without their formats (one open and
/// one `VIDIOC_QUERYCAP` each: cheap enough to poll for hot-plug).
pub fn capture_nodes() -> Vec<(PathBuf, String)> {
    video_nodes()
        .into_iter()
        .filter_map(|p| {
            let dev = v4l::Device::with_path(&p).ok()?;
            let caps = query_caps(&dev).ok()?;
            (caps.device_caps & v4l_sys::V4L2_CAP_VIDEO_CAPTURE != 0)
                .then(|| (p, c_str(&caps.card)))
        })
        .collect()
}

/// The capture devices present now (`/dev/video*` nodes that capture video), with formats.
pub fn list() -> Vec<CameraInfo> {
    video_nodes().iter().filter_map(|p| probe(p).ok()).collect()
}

fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("video") && n[5..].parse::<u32>().is_ok())
        })
        .collect();
    nodes.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n[5..].parse::<u32>().ok())
    });
    nodes
}

/// What one node is, or an error when it is not a capture device or cannot be opened.
pub fn probe(path: &Path) -> Result<CameraInfo, CameraError> {
    let dev = v4l::Device::with_path(path).map_err(|e| CameraError::io(path, "the camera", e))?;
    let caps = query_caps(&dev).map_err(|e| CameraError::io(path, "the camera", e))?;
    let capture = caps.device_caps & (v4l_sys::V4L2_CAP_VIDEO_CAPTURE) != 0;
    if !capture {
        return Err(CameraError::msg(path, "not a video capture node"));
    }
    let mut formats = Vec::new();
    for d in dev.enum_formats().unwrap_or_default() {
        let fourcc = d.fourcc.str().unwrap_or("????").to_string();
        let mut sizes = Vec::new();
        for fs in dev.enum_framesizes(d.fourcc).unwrap_or_default() {
            let discrete: Vec<(u32, u32)> = match fs.size {
                v4l::framesize::FrameSizeEnum::Discrete(s) => vec![(s.width, s.height)],
                v4l::framesize::FrameSizeEnum::Stepwise(s) => {
                    let mut v = vec![(s.min_width, s.min_height), (s.max_width, s.max_height)];
                    for (w, h) in [(640, 480), (1280, 720), (1920, 1080), (3840, 2160)] {
                        let fits = (s.min_width..=s.max_width).contains(&w)
                            && (s.min_height..=s.max_height).contains(&h)
                            && s.step_width.max(1) > 0
                            && (w - s.min_width) % s.step_width.max(1) == 0
                            && (h - s.min_height) % s.step_height.max(1) == 0;
                        if fits {
                            v.push((w, h));
                        }
                    }
                    v
                }
            };
            for (w, h) in discrete {
                let max_fps = dev
                    .enum_frameintervals(d.fourcc, w, h)
                    .ok()
                    .and_then(|ivs| {
                        ivs.iter()
                            .filter_map(|iv| match &iv.interval {
                                v4l::frameinterval::FrameIntervalEnum::Discrete(f) => (f.numerator
                                    > 0)
                                .then(|| f64::from(f.denominator) / f64::from(f.numerator)),
                                v4l::frameinterval::FrameIntervalEnum::Stepwise(s) => {
                                    (s.min.numerator > 0).then(|| {
                                        f64::from(s.min.denominator) / f64::from(s.min.numerator)
                                    })
                                }
                            })
                            .reduce(f64::max)
                    });
                sizes.push(SizeInfo {
                    width: w,
                    height: h,
                    max_fps,
                });
            }
        }
        formats.push(FormatInfo {
            fourcc,
            description: d.description,
            sizes,
        });
    }
    Ok(CameraInfo {
        path: path.to_path_buf(),
        name: c_str(&caps.card),
        driver: c_str(&caps.driver),
        bus: c_str(&caps.bus_info),
        formats,
    })
}

fn query_caps(dev: &v4l::Device) -> io::Result<v4l_sys::v4l2_capability> {
    // SAFETY: VIDIOC_QUERYCAP fills a plain C struct we own.
    unsafe {
        let mut caps: v4l_sys::v4l2_capability = mem::zeroed();
        v4l2::ioctl(
            dev.handle().fd(),
            v4l2::vidioc::VIDIOC_QUERYCAP,
            &mut caps as *mut _ as *mut std::os::raw::c_void,
        )?;
        if caps.capabilities & v4l_sys::V4L2_CAP_DEVICE_CAPS == 0 {
            caps.device_caps = caps.capabilities;
        }
        Ok(caps)
    }
}

/// The kind of a camera control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlKind {
    /// A number in `min..=max` by `step`.
    Integer,
    /// A 64-bit number.
    Integer64,
    /// On or off.
    Boolean,
    /// One of named items (index → name).
    Menu(Vec<(i64, String)>),
    /// An action (setting it does something once, e.g. vivid's "Disconnect").
    Button,
}

/// One camera control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraControl {
    /// V4L2 control id.
    pub id: u32,
    /// Our key: the driver's name in lower case with `_` (`brightness`, `zoom_absolute`,
    /// `pan_absolute`), like `v4l2-ctl`.
    pub key: String,
    /// The driver's name (`Brightness`, `Zoom, Absolute`).
    pub label: String,
    /// Kind.
    pub kind: ControlKind,
    /// Minimum.
    pub min: i64,
    /// Maximum.
    pub max: i64,
    /// Step.
    pub step: u64,
    /// Default.
    pub default: i64,
    /// Current value (`None` for buttons and write-only controls).
    pub value: Option<i64>,
    /// Cannot be set.
    pub read_only: bool,
    /// Currently has no effect (e.g. exposure while auto exposure is on).
    pub inactive: bool,
}

/// A control's key from its V4L2 name: `"Zoom, Absolute"` → `zoom_absolute`.
pub fn control_key(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// An open camera for its controls.
pub struct Camera {
    path: PathBuf,
    dev: v4l::Device,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera").field("path", &self.path).finish()
    }
}

const TYPE_INTEGER: u32 = 1;
const TYPE_BOOLEAN: u32 = 2;
const TYPE_MENU: u32 = 3;
const TYPE_BUTTON: u32 = 4;
const TYPE_INTEGER64: u32 = 5;
const TYPE_INTEGER_MENU: u32 = 9;

impl Camera {
    /// Opens a camera node.
    pub fn open(path: &Path) -> Result<Self, CameraError> {
        let dev =
            v4l::Device::with_path(path).map_err(|e| CameraError::io(path, "the camera", e))?;
        Ok(Camera {
            path: path.to_path_buf(),
            dev,
        })
    }

    /// Its node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ioctl<T>(&self, request: v4l2::vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        // SAFETY: every request used here takes a pointer to the C struct `T` we own.
        unsafe {
            v4l2::ioctl(
                self.dev.handle().fd(),
                request,
                arg as *mut T as *mut std::os::raw::c_void,
            )
        }
    }

    /// All simple controls (integer, boolean, menu, button), enabled ones only.
    pub fn controls(&self) -> Result<Vec<CameraControl>, CameraError> {
        let mut out = Vec::new();
        // SAFETY: zeroed C structs are valid values.
        let mut q: v4l_sys::v4l2_query_ext_ctrl = unsafe { mem::zeroed() };
        q.id = v4l_sys::V4L2_CTRL_FLAG_NEXT_CTRL;
        loop {
            match self.ioctl(v4l2::vidioc::VIDIOC_QUERY_EXT_CTRL, &mut q) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(CameraError::io(&self.path, "the camera", e)),
            }
            let id = q.id;
            let next = id | v4l_sys::V4L2_CTRL_FLAG_NEXT_CTRL;
            let flags = q.flags;
            let label = {
                // c_char is i8 on x86 and u8 on arm: the cast is needed on one of them.
                #[allow(clippy::unnecessary_cast)]
                let bytes: Vec<u8> = q.name.iter().map(|c| *c as u8).collect();
                c_str(&bytes)
            };
            let kind = match q.type_ {
                TYPE_INTEGER => Some(ControlKind::Integer),
                TYPE_INTEGER64 => Some(ControlKind::Integer64),
                TYPE_BOOLEAN => Some(ControlKind::Boolean),
                TYPE_BUTTON => Some(ControlKind::Button),
                TYPE_MENU | TYPE_INTEGER_MENU => Some(ControlKind::Menu(
                    self.menu_items(id, q.type_, q.minimum, q.maximum),
                )),
                _ => None,
            };
            if let Some(kind) = kind {
                if flags & v4l_sys::V4L2_CTRL_FLAG_DISABLED == 0 {
                    let readable = !matches!(kind, ControlKind::Button)
                        && flags & v4l_sys::V4L2_CTRL_FLAG_WRITE_ONLY == 0;
                    let value = if readable {
                        self.get_id(id, &kind).ok()
                    } else {
                        None
                    };
                    out.push(CameraControl {
                        id,
                        key: control_key(&label),
                        label,
                        kind,
                        min: q.minimum,
                        max: q.maximum,
                        step: q.step,
                        default: q.default_value,
                        value,
                        read_only: flags & v4l_sys::V4L2_CTRL_FLAG_READ_ONLY != 0,
                        inactive: flags & v4l_sys::V4L2_CTRL_FLAG_INACTIVE != 0,
                    });
                }
            }
            // SAFETY: as above.
            q = unsafe { mem::zeroed() };
            q.id = next;
        }
        Ok(out)
    }

    fn menu_items(&self, id: u32, typ: u32, min: i64, max: i64) -> Vec<(i64, String)> {
        let mut items = Vec::new();
        if max < min || max - min > 256 {
            return items;
        }
        for index in min..=max {
            // SAFETY: zeroed C struct.
            let mut m: v4l_sys::v4l2_querymenu = unsafe { mem::zeroed() };
            m.id = id;
            m.index = index as u32;
            if self.ioctl(v4l2::vidioc::VIDIOC_QUERYMENU, &mut m).is_ok() {
                // SAFETY: the union holds a name for menus and a value for integer menus.
                let name = unsafe {
                    if typ == TYPE_MENU {
                        c_str(&m.__bindgen_anon_1.name)
                    } else {
                        let v = m.__bindgen_anon_1.value;
                        v.to_string()
                    }
                };
                items.push((index, name));
            }
        }
        items
    }

    fn get_id(&self, id: u32, kind: &ControlKind) -> io::Result<i64> {
        if *kind == ControlKind::Integer64 {
            return match self.dev.control(id)?.value {
                v4l::control::Value::Integer(v) => Ok(v),
                _ => Err(io::Error::other("unexpected control value")),
            };
        }
        let mut c = v4l_sys::v4l2_control { id, value: 0 };
        self.ioctl(v4l2::vidioc::VIDIOC_G_CTRL, &mut c)?;
        Ok(i64::from(c.value))
    }

    fn find(&self, key: &str) -> Result<CameraControl, CameraError> {
        let all = self.controls()?;
        let keys: Vec<String> = all.iter().map(|c| c.key.clone()).collect();
        all.into_iter().find(|c| c.key == key).ok_or_else(|| {
            CameraError::msg(
                &self.path,
                format!("no control {key:?}; this camera has: {}", keys.join(", ")),
            )
        })
    }

    /// The current value of a control by key (`brightness`, `zoom_absolute`).
    pub fn get(&self, key: &str) -> Result<i64, CameraError> {
        let c = self.find(key)?;
        self.get_id(c.id, &c.kind)
            .map_err(|e| CameraError::msg(&self.path, format!("reading {key}: {e}")))
    }

    /// Sets a control by key; the value must be in its range (a button takes any value and
    /// is pressed).
    pub fn set(&self, key: &str, value: i64) -> Result<(), CameraError> {
        let c = self.find(key)?;
        if c.read_only {
            return Err(CameraError::msg(&self.path, format!("{key} is read-only")));
        }
        if c.kind != ControlKind::Button && !(c.min..=c.max).contains(&value) {
            return Err(CameraError::msg(
                &self.path,
                format!("{key} = {value} is out of range {}..={}", c.min, c.max),
            ));
        }
        let res = if c.kind == ControlKind::Integer64 {
            self.dev.set_control(v4l::control::Control {
                id: c.id,
                value: v4l::control::Value::Integer(value),
            })
        } else {
            let mut ctl = v4l_sys::v4l2_control {
                id: c.id,
                value: if c.kind == ControlKind::Button {
                    0
                } else {
                    value as i32
                },
            };
            self.ioctl(v4l2::vidioc::VIDIOC_S_CTRL, &mut ctl)
        };
        res.map_err(|e| CameraError::msg(&self.path, format!("setting {key} = {value}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fmt(fourcc: &str, sizes: &[(u32, u32, f64)]) -> FormatInfo {
        FormatInfo {
            fourcc: fourcc.into(),
            description: String::new(),
            sizes: sizes
                .iter()
                .map(|(w, h, f)| SizeInfo {
                    width: *w,
                    height: *h,
                    max_fps: Some(*f),
                })
                .collect(),
        }
    }

    #[test]
    fn a_usb2_webcam_gets_mjpg_at_1080p30_not_yuyv_at_5() {
        let formats = [
            fmt(
                "YUYV",
                &[(640, 480, 30.0), (1280, 720, 10.0), (1920, 1080, 5.0)],
            ),
            fmt(
                "MJPG",
                &[(640, 480, 30.0), (1280, 720, 30.0), (1920, 1080, 30.0)],
            ),
        ];
        let c = choose_format(&formats, 1920, 1080, 30.0).unwrap();
        assert_eq!((c.fourcc.as_str(), c.width, c.height), ("MJPG", 1920, 1080));
        let c = choose_format(&formats, 640, 480, 30.0).unwrap();
        assert_eq!((c.fourcc.as_str(), c.width), ("YUYV", 640));
        let c = choose_format(&formats, 1280, 720, 30.0).unwrap();
        assert_eq!(c.fourcc, "MJPG");
    }

    #[test]
    fn a_small_camera_gives_its_largest_size() {
        let formats = [fmt("YUYV", &[(320, 240, 30.0), (640, 480, 30.0)])];
        let c = choose_format(&formats, 1280, 720, 30.0).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
        assert_eq!(
            choose_format(&[fmt("BA81", &[(640, 480, 30.0)])], 640, 480, 30.0),
            None
        );
    }

    #[test]
    fn control_keys_are_like_v4l2_ctl() {
        assert_eq!(control_key("Zoom, Absolute"), "zoom_absolute");
        assert_eq!(control_key("Brightness"), "brightness");
        assert_eq!(
            control_key("White Balance Temperature, Auto"),
            "white_balance_temperature_auto"
        );
        assert_eq!(control_key("Disconnect"), "disconnect");
    }

    proptest! {
        /// When some size covers the wanted one at the wanted rate, the choice does too.
        #[test]
        fn the_choice_covers_the_wanted_size_when_possible(
            sizes in proptest::collection::vec((1u32..4000, 1u32..3000, 1u32..61), 1..12),
            w in 1u32..4000, h in 1u32..3000, f in 1u32..61,
        ) {
            let formats = [fmt("YUYV", &sizes.iter().map(|(a, b, c)| (*a, *b, f64::from(*c))).collect::<Vec<_>>())];
            let c = choose_format(&formats, w, h, f64::from(f)).unwrap();
            let possible = sizes.iter().any(|(a, b, c)| *a >= w && *b >= h && *c >= f);
            if possible {
                prop_assert!(c.width >= w && c.height >= h && c.fps.unwrap() >= f64::from(f));
                // and no covering size at the rate is smaller
                let smallest = sizes.iter().filter(|(a, b, c)| *a >= w && *b >= h && *c >= f).map(|(a, b, _)| u64::from(*a) * u64::from(*b)).min().unwrap();
                prop_assert_eq!(u64::from(c.width) * u64::from(c.height), smallest);
            }
        }
    }
}
