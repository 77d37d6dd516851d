#![cfg(feature = "viewer")]
//! Video helpers: output kinds from paths, the caption, atomic PNG frames.

use clamp::video::{VideoOutput, draw_caption, frame_path, write_png};
use image::{Rgba, RgbaImage};
use std::path::Path;

#[test]
fn output_kind_follows_the_path() {
    assert_eq!(
        VideoOutput::from_path(Path::new("a/b.MP4")).unwrap(),
        VideoOutput::Mp4("a/b.MP4".into())
    );
    assert_eq!(
        VideoOutput::from_path(Path::new("clip.gif")).unwrap(),
        VideoOutput::Gif("clip.gif".into())
    );
    assert_eq!(
        VideoOutput::from_path(Path::new("frames/")).unwrap(),
        VideoOutput::Frames("frames/".into())
    );
    assert_eq!(
        VideoOutput::Gif("out/clip.gif".into()).frames_dir(),
        Path::new("out/clip.gif.frames")
    );
    assert!(
        VideoOutput::from_path(Path::new("clip.webm"))
            .unwrap_err()
            .contains(".webm")
    );
}

#[test]
fn the_caption_writes_light_text_on_a_dark_band_in_the_corner_only() {
    let mut image = RgbaImage::from_pixel(320, 180, Rgba([200, 40, 40, 255]));
    draw_caption(&mut image, "step 12  alpha 2.00  Z 6.1");
    // Text pixels are light, the band around them darker than the background.
    let light = image.pixels().filter(|p| p.0[1] > 150).count();
    assert!(light > 50, "no text drawn ({light} light pixels)");
    let corner = image.get_pixel(1, 1).0;
    assert!(corner[0] < 150, "the band darkens the corner: {corner:?}");
    // The bottom right is untouched.
    assert_eq!(image.get_pixel(319, 179).0, [200, 40, 40, 255]);
}

#[test]
fn frames_are_written_whole() {
    let dir = std::env::temp_dir().join(format!("clamp-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = frame_path(&dir, 7);
    assert!(path.ends_with("frame_00007.png"));
    let image = RgbaImage::from_pixel(8, 4, Rgba([1, 2, 3, 255]));
    write_png(&path, &image).unwrap();
    assert_eq!(image::open(&path).unwrap().to_rgba8(), image);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}
