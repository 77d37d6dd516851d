//! Video output for recordings: PNG frames written atomically one by one (so an interrupted run
//! keeps what it made), a GIF encoded natively, an MP4 through ffmpeg when it is on PATH, and the
//! caption drawn onto each frame.

use std::path::{Path, PathBuf};
use std::process::Command;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Delay, Frame, Rgba, RgbaImage};

use crate::atomic::write_atomically;

/// What a recording writes, from the output path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoOutput {
    /// PNG frames in this directory and nothing else.
    Frames(PathBuf),
    Gif(PathBuf),
    Mp4(PathBuf),
}

impl VideoOutput {
    /// `DIR/` (or an existing directory) for frames, `FILE.gif`, `FILE.mp4`; anything else is an
    /// error naming the extension.
    pub fn from_path(path: &Path) -> Result<Self, String> {
        let text = path.to_string_lossy();
        if text.ends_with('/') || path.is_dir() {
            return Ok(Self::Frames(path.to_path_buf()));
        }
        match path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
        {
            Some(ext) if ext == "gif" => Ok(Self::Gif(path.to_path_buf())),
            Some(ext) if ext == "mp4" => Ok(Self::Mp4(path.to_path_buf())),
            Some(ext) => Err(format!(
                "--out {}: unknown extension '.{ext}' (use FILE.mp4, FILE.gif or DIR/)",
                path.display()
            )),
            None => Err(format!(
                "--out {}: no extension (use FILE.mp4, FILE.gif, or DIR/ for PNG frames)",
                path.display()
            )),
        }
    }

    /// Where the PNG frames go: the directory itself, or `FILE.frames/` beside a video.
    pub fn frames_dir(&self) -> PathBuf {
        match self {
            Self::Frames(dir) => dir.clone(),
            Self::Gif(file) | Self::Mp4(file) => {
                let mut name = file.file_name().unwrap_or_default().to_os_string();
                name.push(".frames");
                file.with_file_name(name)
            }
        }
    }

    /// Creates the frame directory and proves it (and the video's directory) can be written,
    /// before any training starts.
    pub fn prepare(&self) -> Result<(), String> {
        let dir = self.frames_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("--out: cannot create {}: {e}", dir.display()))?;
        let probe = dir.join(".clamp-write-test");
        std::fs::write(&probe, b"ok")
            .map_err(|e| format!("--out: cannot write in {}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(&probe);
        if let Self::Gif(file) | Self::Mp4(file) = self {
            let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = parent.unwrap_or(Path::new("."));
            let probe = parent.join(".clamp-write-test");
            std::fs::write(&probe, b"ok")
                .map_err(|e| format!("--out: cannot write in {}: {e}", parent.display()))?;
            let _ = std::fs::remove_file(&probe);
        }
        Ok(())
    }
}

/// Path of frame `index` in `dir`.
pub fn frame_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("frame_{index:05}.png"))
}

/// Encodes and writes a PNG atomically.
pub fn write_png(path: &Path, image: &RgbaImage) -> Result<(), String> {
    let bytes = encode_png(image).map_err(|e| format!("cannot encode {}: {e}", path.display()))?;
    write_atomically(path, &bytes)
}

/// Encodes and writes PNG frames on a thread of its own, in the order given, so that the next
/// frame is trained and drawn meanwhile. At most two frames wait; the first error stops it and
/// is returned by the next call.
#[cfg(not(target_arch = "wasm32"))]
pub struct FrameWriter {
    frames: Option<std::sync::mpsc::SyncSender<(PathBuf, RgbaImage)>>,
    thread: Option<std::thread::JoinHandle<Result<f64, String>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl FrameWriter {
    pub fn spawn() -> Self {
        let (frames, queue) = std::sync::mpsc::sync_channel::<(PathBuf, RgbaImage)>(2);
        let thread = std::thread::Builder::new()
            .name("clamp-frame-writer".into())
            .spawn(move || {
                let mut seconds = 0.0;
                for (path, image) in queue {
                    let started = web_time::Instant::now();
                    write_png(&path, &image)?;
                    seconds += started.elapsed().as_secs_f64();
                }
                Ok(seconds)
            })
            .expect("a thread for writing frames starts");
        Self {
            frames: Some(frames),
            thread: Some(thread),
        }
    }

    /// Queues `image` for `path`, waiting while two frames are queued.
    pub fn write(&mut self, path: PathBuf, image: RgbaImage) -> Result<(), String> {
        let sent = self
            .frames
            .as_ref()
            .is_some_and(|frames| frames.send((path, image)).is_ok());
        if sent {
            Ok(())
        } else {
            // The thread stopped at an error: that error.
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| "the frame writer stopped".into()))
        }
    }

    /// Writes what is queued and returns the seconds spent encoding and writing.
    pub fn finish(mut self) -> Result<f64, String> {
        self.join()
    }

    fn join(&mut self) -> Result<f64, String> {
        self.frames = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the frame writer panicked".into())),
            None => Err("the frame writer already stopped".into()),
        }
    }
}

/// The PNG file of `image`.
pub fn encode_png(image: &RgbaImage) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Writes the frames as a looping GIF at `fps` (atomically).
pub fn encode_gif(frames: &[PathBuf], out: &Path, fps: f64) -> Result<(), String> {
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 10);
        encoder
            .set_repeat(image::codecs::gif::Repeat::Infinite)
            .map_err(|e| format!("{}: {e}", out.display()))?;
        let delay = Delay::from_numer_denom_ms((1000.0 / fps).round().max(10.0) as u32, 1);
        for path in frames {
            let image = image::open(path)
                .map_err(|e| format!("cannot read frame {}: {e}", path.display()))?
                .to_rgba8();
            encoder
                .encode_frame(Frame::from_parts(image, 0, 0, delay))
                .map_err(|e| format!("{}: {e}", out.display()))?;
        }
    }
    write_atomically(out, &bytes)
}

/// Whether `ffmpeg` can be run.
pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Encodes `dir/frame_%05d.png` into an H.264 MP4 with ffmpeg (atomically: a temporary file
/// renamed at the end).
pub fn encode_mp4(dir: &Path, out: &Path, fps: f64) -> Result<(), String> {
    let partial = out.with_extension("partial.mp4");
    let result = Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-framerate"])
        .arg(format!("{fps}"))
        .arg("-i")
        .arg(dir.join("frame_%05d.png"))
        .args([
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            // No encoder version or dates in the file: the same frames give the same bytes.
            "-fflags",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(&partial)
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !result.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    std::fs::rename(&partial, out)
        .map_err(|e| format!("cannot move the video to {}: {e}", out.display()))
}

/// Draws `text` in the top-left corner on a dark translucent band, one line per `\n`.
pub fn draw_caption(image: &mut RgbaImage, text: &str) {
    let Ok(font) = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR) else {
        return;
    };
    let height = (image.height() as f32 / 28.0).clamp(11.0, 28.0);
    let scaled = font.as_scaled(PxScale::from(height));
    let margin = (height * 0.5).round() as i64;
    let lines: Vec<&str> = text.split('\n').collect();
    let width: f32 = lines
        .iter()
        .map(|line| {
            line.chars()
                .map(|c| scaled.h_advance(font.glyph_id(c)))
                .sum::<f32>()
        })
        .fold(0.0, f32::max);
    let line_height = (height * 1.5).ceil() as i64;
    let band_w = (width.ceil() as i64 + 2 * margin).min(image.width() as i64);
    let band_h = (line_height * lines.len() as i64 + margin).min(image.height() as i64);
    for y in 0..band_h {
        for x in 0..band_w {
            let pixel = image.get_pixel_mut(x as u32, y as u32);
            blend(pixel, [0, 0, 0], 0.55);
        }
    }
    for (row, line) in lines.iter().enumerate() {
        let mut caret = margin as f32;
        let baseline = margin as f32 + scaled.ascent() + (row as i64 * line_height) as f32;
        for c in line.chars() {
            let id = font.glyph_id(c);
            let glyph = id.with_scale_and_position(PxScale::from(height), point(caret, baseline));
            caret += scaled.h_advance(id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let x = bounds.min.x as i64 + gx as i64;
                    let y = bounds.min.y as i64 + gy as i64;
                    if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height()
                    {
                        blend(
                            image.get_pixel_mut(x as u32, y as u32),
                            [240, 240, 240],
                            coverage,
                        );
                    }
                });
            }
        }
    }
}

fn blend(pixel: &mut Rgba<u8>, color: [u8; 3], amount: f32) {
    let a = amount.clamp(0.0, 1.0);
    for (channel, &target) in pixel.0.iter_mut().zip(color.iter()) {
        *channel = (*channel as f32 * (1.0 - a) + target as f32 * a).round() as u8;
    }
    pixel.0[3] = 255;
}
