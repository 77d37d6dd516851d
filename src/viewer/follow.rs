//! Runs trained elsewhere (`clamp view --follow DIR`): a thread a run reads the pictures its
//! trainer appends to `DIR/pictures.bin` ([`crate::pictures`]) and the lines of its
//! `metrics.jsonl` as they are written, and hands them to the run as frames and plot points.
//! The run is then drawn, plotted and scrubbed like one trained here.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use web_time::Instant;

use super::scene::SceneFrame;
use super::training::{History, PictureSample, TrainingStatus};
use crate::pictures::{HEADER_FILE, Picture, PictureHeader, PictureReader};
use crate::readout::{PackingMetrics, contact_pairs};
use crate::train::StepReport;

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(150);
const METRICS_FILE: &str = "metrics.jsonl";

/// The spheres of `picture`, with contacts and touching pairs by the read-out's rule.
pub fn frame_of_picture(picture: Picture, header: &PictureHeader) -> SceneFrame {
    let pairs = contact_pairs(&picture.centers, &picture.radii, header.dim);
    let mut contacts = vec![0u32; picture.radii.len()];
    for &[i, j] in &pairs {
        contacts[i as usize] += 1;
        contacts[j as usize] += 1;
    }
    SceneFrame {
        step: picture.step as usize,
        dim: header.dim,
        centers: picture.centers,
        radii: picture.radii,
        labels: header.labels.clone(),
        contacts,
        pairs,
        images: header.images.clone(),
        unit_sphere: true,
    }
}

/// What the plots show of a picture: the class purity of its spheres projected to 3-D by PCA
/// (as the viewer draws them; the alignment between pictures only rotates them), their mean
/// contacts and radius.
pub fn picture_sample(frame: &SceneFrame) -> PictureSample {
    let purity = crate::projection::Projector::fit(
        &frame.centers,
        frame.dim,
        crate::projection::ProjectionMode::Pca,
        None,
    )
    .map(|projector| {
        let positions: Vec<bevy::math::Vec3> = projector
            .project(&frame.centers)
            .into_iter()
            .map(bevy::math::Vec3::from_array)
            .collect();
        super::scene::picture_purity(&positions, &frame.labels)
    })
    .unwrap_or(f64::NAN);
    PictureSample::of(frame, purity)
}

/// Whether `dir` can be followed: a folder that holds a run (its pictures, or a metrics file
/// of a run whose first picture is still to come). The error is one line naming it.
pub fn check_followable(dir: &Path) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("--follow {}: no such folder", dir.display()));
    }
    if dir.join(HEADER_FILE).exists() {
        return PictureHeader::read(dir)
            .map(|_| ())
            .map_err(|e| format!("--follow: {e}"));
    }
    if dir.join(METRICS_FILE).exists() {
        return Ok(());
    }
    Err(format!(
        "--follow {}: holds no run (neither {HEADER_FILE} nor {METRICS_FILE}; `clamp train \
         --out {}` or python/clamp_follow.py writes them)",
        dir.display(),
        dir.display()
    ))
}

/// One line of `metrics.jsonl` worth plotting.
#[derive(Clone, Debug)]
pub enum MetricLine {
    Step(Box<StepReport>),
    /// (step, kNN accuracy, linear-probe accuracy).
    Probe([f64; 3]),
}

/// The line as a plot point: clamp's own step lines whole; another writer's `step` and `loss`
/// (its other values unknown); probes.
pub fn parse_metric_line(line: &str) -> Option<MetricLine> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let step = value.get("step")?.as_u64()? as f64;
    if value.get("event").is_some() {
        return None;
    }
    if let (Some(knn), Some(linear)) = (
        value.get("knn_acc").and_then(|v| v.as_f64()),
        value.get("linear_acc").and_then(|v| v.as_f64()),
    ) {
        return Some(MetricLine::Probe([step, knn, linear]));
    }
    if let Ok(report) = serde_json::from_value::<StepReport>(value.clone()) {
        return Some(MetricLine::Step(Box::new(report)));
    }
    let loss = value.get("loss")?.as_f64()?;
    let unknown = f64::NAN;
    Some(MetricLine::Step(Box::new(StepReport {
        step: step as usize,
        loss,
        packing: PackingMetrics {
            loss,
            energy: unknown,
            mean_contacts: unknown,
            activity: unknown,
            rattler_fraction: unknown,
            mean_radius: unknown,
            ..PackingMetrics::default()
        },
        alpha: unknown,
        radius_scale: unknown,
        lr: unknown,
        weight_decay: unknown,
        seconds: unknown,
        images_per_sec: unknown,
    })))
}

enum FollowEvent {
    Header(PictureHeader),
    Pictures(Vec<(SceneFrame, PictureSample)>),
    /// The pictures were cut back (the run resumed from a checkpoint): what was shown goes.
    Rewound,
    Metrics(Vec<MetricLine>),
    /// Metrics rewritten shorter (a resume): the plotted lines go.
    MetricsRewound,
    Problem(String),
}

/// A followed run's reader: its thread, and what it has read.
pub struct FollowLink {
    pub dir: PathBuf,
    pub header: Option<PictureHeader>,
    /// Pictures read so far.
    pub pictures: usize,
    /// When the newest picture was read.
    pub newest_at: Option<Instant>,
    /// A damaged file, said once.
    pub problem: Option<String>,
    /// (In a mutex: a resource is shared between the systems' threads.)
    events: Mutex<Receiver<FollowEvent>>,
    stop: Arc<AtomicBool>,
}

impl Drop for FollowLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl FollowLink {
    /// Starts reading `dir` on a thread of its own.
    pub fn start(dir: PathBuf) -> Self {
        let (sender, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let reading = dir.clone();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("clamp-follow".into())
            .spawn(move || read_run(&reading, &sender, &stopped))
            .ok();
        Self {
            dir,
            header: None,
            pictures: 0,
            newest_at: None,
            problem: None,
            events: Mutex::new(events),
            stop,
        }
    }

    /// Folds what the thread read into the run's status and plots; returns the new frames,
    /// oldest first (`rewound`: what was shown before is gone).
    pub fn absorb(
        &mut self,
        status: &mut TrainingStatus,
        history: &mut History,
    ) -> (Vec<SceneFrame>, bool) {
        let mut frames = Vec::new();
        let mut rewound = false;
        let events: Vec<FollowEvent> = match self.events.lock() {
            Ok(receiver) => receiver.try_iter().collect(),
            Err(_) => Vec::new(),
        };
        for event in events {
            match event {
                FollowEvent::Header(header) => self.header = Some(header),
                FollowEvent::Pictures(new) => {
                    self.pictures += new.len();
                    self.newest_at = Some(Instant::now());
                    for (frame, sample) in new {
                        status.step = status.step.max(frame.step);
                        history.pictures.push(sample);
                        frames.push(frame);
                    }
                }
                FollowEvent::Rewound => {
                    frames.clear();
                    history.pictures.clear();
                    self.pictures = 0;
                    status.step = 0;
                    rewound = true;
                }
                FollowEvent::Metrics(lines) => {
                    for line in lines {
                        match line {
                            MetricLine::Step(report) => {
                                status.step = status.step.max(report.step);
                                history.push(&report);
                                status.last = Some(*report);
                            }
                            MetricLine::Probe(probe) => history.probes.push(probe),
                        }
                    }
                }
                FollowEvent::MetricsRewound => {
                    let pictures = std::mem::take(&mut history.pictures);
                    history.clear();
                    history.pictures = pictures;
                }
                FollowEvent::Problem(problem) => {
                    bevy::log::warn!("{problem}");
                    status.error = Some(problem.clone());
                    self.problem = Some(problem);
                }
            }
        }
        (frames, rewound)
    }
}

/// The thread: pictures and metrics lines as they come, until the link is dropped.
fn read_run(dir: &Path, sender: &Sender<FollowEvent>, stop: &AtomicBool) {
    let mut reader: Option<PictureReader> = None;
    let mut said_header_problem = false;
    let mut last_step: Option<u64> = None;
    let mut metrics = MetricsTail::default();
    while !stop.load(Ordering::SeqCst) {
        if reader.is_none() && dir.join(HEADER_FILE).exists() {
            match PictureReader::open(dir) {
                Ok(opened) => {
                    if sender
                        .send(FollowEvent::Header(opened.header.clone()))
                        .is_err()
                    {
                        return;
                    }
                    reader = Some(opened);
                }
                Err(e) if !said_header_problem => {
                    said_header_problem = true;
                    if sender.send(FollowEvent::Problem(e)).is_err() {
                        return;
                    }
                }
                Err(_) => {}
            }
        }
        if let Some(reader) = reader.as_mut() {
            let mut events = Vec::new();
            match reader.read_new() {
                Ok(read) => {
                    if let Some(first) = read.pictures.first()
                        && last_step.is_some_and(|last| first.step <= last)
                    {
                        events.push(FollowEvent::Rewound);
                    }
                    if let Some(last) = read.pictures.last() {
                        last_step = Some(last.step);
                        let header = reader.header.clone();
                        let frames = read
                            .pictures
                            .into_iter()
                            .map(|p| {
                                let frame = frame_of_picture(p, &header);
                                let sample = picture_sample(&frame);
                                (frame, sample)
                            })
                            .collect();
                        events.push(FollowEvent::Pictures(frames));
                    }
                    if let Some(damage) = read.damage {
                        events.push(FollowEvent::Problem(damage));
                    }
                }
                Err(e) => events.push(FollowEvent::Problem(e)),
            }
            for event in events {
                if sender.send(event).is_err() {
                    return;
                }
            }
        }
        for event in metrics.read(&dir.join(METRICS_FILE)) {
            if sender.send(event).is_err() {
                return;
            }
        }
        std::thread::sleep(POLL);
    }
}

/// The whole lines appended to a metrics file since the last read.
#[derive(Default)]
struct MetricsTail {
    offset: u64,
}

impl MetricsTail {
    fn read(&mut self, path: &Path) -> Vec<FollowEvent> {
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let length = file.metadata().map_or(0, |m| m.len());
        let mut events = Vec::new();
        if length < self.offset {
            self.offset = 0;
            events.push(FollowEvent::MetricsRewound);
        }
        if length == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return events;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return events;
        }
        // Only whole lines: a line being written is read next time.
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return events;
        };
        self.offset += end as u64 + 1;
        let lines: Vec<MetricLine> = String::from_utf8_lossy(&bytes[..end])
            .lines()
            .filter_map(parse_metric_line)
            .collect();
        if !lines.is_empty() {
            events.push(FollowEvent::Metrics(lines));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_of_clamp_and_of_other_writers_become_plot_points() {
        let probe = parse_metric_line(r#"{"step":40,"knn_acc":0.7,"linear_acc":0.65}"#);
        assert!(matches!(probe, Some(MetricLine::Probe([40.0, 0.7, 0.65]))));
        let other = parse_metric_line(r#"{"step":12,"loss":3.5,"lr":0.1}"#);
        let Some(MetricLine::Step(report)) = other else {
            panic!("a step and a loss are a point")
        };
        assert_eq!((report.step, report.loss), (12, 3.5));
        assert!(report.packing.mean_contacts.is_nan(), "unknown, not zero");
        assert!(parse_metric_line(r#"{"event":"checkpoint","step":5}"#).is_none());
        assert!(
            parse_metric_line(r#"{"step":5,"lo"#).is_none(),
            "a torn line"
        );
        assert!(parse_metric_line("not json").is_none());
    }

    #[test]
    fn a_pictures_contacts_follow_the_readout_rule() {
        // Three spheres on a line in 2-d: 0 and 1 overlap, 2 is apart.
        let header = PictureHeader::new(2, vec![0, 1, 2], Vec::new(), "test");
        let picture = Picture {
            step: 3,
            centers: vec![0.0, 0.0, 0.15, 0.0, 0.9, 0.0],
            radii: vec![0.1, 0.1, 0.1],
        };
        let frame = frame_of_picture(picture, &header);
        assert_eq!(frame.pairs, vec![[0, 1]]);
        assert_eq!(frame.contacts, vec![1, 1, 0]);
        assert_eq!((frame.step, frame.labels.clone()), (3, vec![0, 1, 2]));
    }
}
