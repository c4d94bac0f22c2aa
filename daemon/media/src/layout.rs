//! Where each remote video goes on the display. Pure arithmetic, no GStreamer: the receiver
//! applies the rectangles to its compositor.
//!
//! - One video: the whole canvas.
//! - A screen share (the first, if several): the main area, the left three quarters; every
//!   other video in a column on the right.
//! - Else an active speaker among two or more videos: the same, with the speaker as main.
//! - Else an even grid, as square as possible, filled row by row.
//!
//! Each video is then fitted into its cell keeping its aspect ratio ([`fit`]).
//!
//! At most a configured number of videos are shown ([`shown`]): the screen share and the
//! active speaker first, then the others in arrival order. The rest are not drawn, and the
//! session tells the SFU not to send them.

/// A rectangle on the canvas, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
}

/// What a video tile shows, as far as placement is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileRole {
    /// A participant's camera.
    Camera,
    /// The current active speaker's camera.
    ActiveSpeaker,
    /// A shared screen.
    ScreenShare,
}

/// Which tiles are drawn when at most `max` videos fit on the display: the first screen share
/// and the active speaker always (when `max` allows), then the other tiles in order.
pub fn shown(tiles: &[TileRole], max: usize) -> Vec<bool> {
    let mut shown = vec![false; tiles.len()];
    let mut left = max;
    let first_share = tiles.iter().position(|t| *t == TileRole::ScreenShare);
    let speaker = tiles.iter().position(|t| *t == TileRole::ActiveSpeaker);
    for i in first_share.into_iter().chain(speaker) {
        if left > 0 && !shown[i] {
            shown[i] = true;
            left -= 1;
        }
    }
    for flag in shown.iter_mut() {
        if left == 0 {
            break;
        }
        if !*flag {
            *flag = true;
            left -= 1;
        }
    }
    shown
}

/// The cell of each tile (same order as `tiles`) on a `width`×`height` canvas.
pub fn arrange(width: i32, height: i32, tiles: &[TileRole]) -> Vec<Rect> {
    let n = tiles.len();
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![Rect {
            x: 0,
            y: 0,
            width,
            height,
        }];
    }
    let main = tiles
        .iter()
        .position(|t| *t == TileRole::ScreenShare)
        .or_else(|| tiles.iter().position(|t| *t == TileRole::ActiveSpeaker));
    match main {
        Some(main) => {
            let main_width = width * 3 / 4;
            let side = n as i32 - 1;
            let side_height = height / side;
            let mut next = 0;
            tiles
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i == main {
                        Rect {
                            x: 0,
                            y: 0,
                            width: main_width,
                            height,
                        }
                    } else {
                        let r = Rect {
                            x: main_width,
                            y: next * side_height,
                            width: width - main_width,
                            height: side_height,
                        };
                        next += 1;
                        r
                    }
                })
                .collect()
        }
        None => {
            let cols = (n as f64).sqrt().ceil() as i32;
            let rows = (n as i32 + cols - 1) / cols;
            let (cw, ch) = (width / cols, height / rows);
            (0..n as i32)
                .map(|i| Rect {
                    x: (i % cols) * cw,
                    y: (i / cols) * ch,
                    width: cw,
                    height: ch,
                })
                .collect()
        }
    }
}

/// The largest rectangle of the source's aspect ratio centred in `cell`; the whole cell when
/// the source size is not known yet.
pub fn fit(cell: Rect, source: Option<(i32, i32)>) -> Rect {
    let Some((sw, sh)) = source.filter(|(w, h)| *w > 0 && *h > 0) else {
        return cell;
    };
    let (w, h) = if i64::from(cell.width) * i64::from(sh) <= i64::from(cell.height) * i64::from(sw)
    {
        (
            cell.width,
            (i64::from(cell.width) * i64::from(sh) / i64::from(sw)) as i32,
        )
    } else {
        (
            (i64::from(cell.height) * i64::from(sw) / i64::from(sh)) as i32,
            cell.height,
        )
    };
    Rect {
        x: cell.x + (cell.width - w) / 2,
        y: cell.y + (cell.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_video_fills_the_screen() {
        assert_eq!(
            arrange(1920, 1080, &[TileRole::Camera]),
            vec![Rect {
                x: 0,
                y: 0,
                width: 1920,
                height: 1080
            }]
        );
    }

    #[test]
    fn four_cameras_make_a_two_by_two_grid() {
        let cells = arrange(1920, 1080, &[TileRole::Camera; 4]);
        assert_eq!(
            cells[0],
            Rect {
                x: 0,
                y: 0,
                width: 960,
                height: 540
            }
        );
        assert_eq!(
            cells[3],
            Rect {
                x: 960,
                y: 540,
                width: 960,
                height: 540
            }
        );
    }

    #[test]
    fn five_cameras_use_three_columns_and_two_rows() {
        let cells = arrange(1920, 1080, &[TileRole::Camera; 5]);
        assert_eq!(
            cells[4],
            Rect {
                x: 640,
                y: 540,
                width: 640,
                height: 540
            }
        );
    }

    #[test]
    fn the_active_speaker_is_shown_larger() {
        let cells = arrange(
            1600,
            900,
            &[TileRole::Camera, TileRole::ActiveSpeaker, TileRole::Camera],
        );
        assert_eq!(
            cells[1],
            Rect {
                x: 0,
                y: 0,
                width: 1200,
                height: 900
            }
        );
        assert_eq!(
            cells[0],
            Rect {
                x: 1200,
                y: 0,
                width: 400,
                height: 450
            }
        );
        assert_eq!(
            cells[2],
            Rect {
                x: 1200,
                y: 450,
                width: 400,
                height: 450
            }
        );
    }

    #[test]
    fn a_screen_share_takes_the_main_area_over_the_speaker() {
        let cells = arrange(1600, 900, &[TileRole::ActiveSpeaker, TileRole::ScreenShare]);
        assert_eq!(cells[1].width, 1200);
        assert_eq!(cells[0].x, 1200);
    }

    #[test]
    fn beyond_the_maximum_the_share_and_the_speaker_are_shown_before_the_others() {
        use TileRole::*;
        assert_eq!(shown(&[Camera, Camera], 9), vec![true, true]);
        assert_eq!(
            shown(&[Camera, Camera, ActiveSpeaker, ScreenShare], 2),
            vec![false, false, true, true]
        );
        assert_eq!(
            shown(&[Camera, ActiveSpeaker, Camera], 2),
            vec![true, true, false]
        );
        assert_eq!(shown(&[Camera, Camera], 0), vec![false, false]);
    }

    #[test]
    fn videos_keep_their_aspect_ratio_inside_their_cell() {
        let cell = Rect {
            x: 0,
            y: 0,
            width: 960,
            height: 540,
        };
        assert_eq!(
            fit(cell, Some((640, 480))),
            Rect {
                x: 120,
                y: 0,
                width: 720,
                height: 540
            }
        );
        assert_eq!(fit(cell, Some((1280, 720))), cell);
        assert_eq!(fit(cell, None), cell);
    }
}
