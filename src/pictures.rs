//! A run's packing as it trains, on disk: the spheres of a fixed set of held-out images (centers
//! and radii in embedding space) at step after step, so that another process can watch the run
//! while it trains (`clamp view --follow`) or film it afterwards (`clamp record --from`).
//!
//! Two files in the run's folder (docs/follow.md shows how numpy reads them):
//! - `pictures.json`: what every picture holds: `spheres` N, `dim` d, each sphere's class
//!   (`labels`), optionally its image's index in the test split (`images`) and the class names
//!   (`classes`). Written whole (atomically) once.
//! - `pictures.bin`: pictures appended one after another, each a fixed-size record of
//!   `16 + 4 N (d + 1)` bytes, little-endian: the magic `CLPF`, a CRC-32 (IEEE, zlib's) of the
//!   rest of the record, the step (u64), the centers (f32, `[N, d]` row-major) and the radii
//!   (f32, `[N]`, the radius scale included).
//!
//! A picture is written with one `write` call, and a reader takes only whole records whose
//! checksum holds, so a reader never sees a torn picture: a record still being written is
//! waited for, and a damaged one ends what is read, with a line that says where.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const HEADER_FILE: &str = "pictures.json";
pub const PICTURES_FILE: &str = "pictures.bin";
/// The first bytes of every record.
pub const MAGIC: [u8; 4] = *b"CLPF";
/// Bytes before the centers: magic, checksum, step.
pub const RECORD_PREFIX: usize = 16;
pub const FORMAT: &str = "clamp-pictures";
pub const VERSION: u32 = 1;
/// Largest pictures read: beyond these a header is taken for damage, not a run.
pub const MAX_SPHERES: usize = 100_000;
pub const MAX_DIM: usize = 65_536;
/// Spheres `clamp train` draws by default: the viewer's own number.
pub const DEFAULT_SPHERES: usize = 200;

/// `pictures.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PictureHeader {
    pub format: String,
    pub version: u32,
    pub spheres: usize,
    pub dim: usize,
    /// Class of each sphere.
    pub labels: Vec<u16>,
    /// Index of each sphere's image in the test split (empty when unknown).
    #[serde(default)]
    pub images: Vec<usize>,
    /// Class names, by label (empty when unknown).
    #[serde(default)]
    pub classes: Vec<String>,
    /// What wrote the run ("clamp train", "clamp_follow.py").
    #[serde(default)]
    pub writer: String,
}

impl PictureHeader {
    pub fn new(dim: usize, labels: Vec<u16>, images: Vec<usize>, writer: &str) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            spheres: labels.len(),
            dim,
            labels,
            images,
            classes: Vec::new(),
            writer: writer.into(),
        }
    }

    /// Bytes of one picture.
    pub fn record_bytes(&self) -> usize {
        RECORD_PREFIX + 4 * self.spheres * (self.dim + 1)
    }

    /// Checks the fields against each other; errors name `path` and the field.
    pub fn validate(&self, path: &Path) -> Result<(), String> {
        let at = path.display();
        if self.format != FORMAT {
            return Err(format!(
                "{at}: format is \"{}\", expected \"{FORMAT}\"",
                self.format
            ));
        }
        if self.version != VERSION {
            return Err(format!(
                "{at}: version {} is not one this clamp reads ({VERSION})",
                self.version
            ));
        }
        if !(2..=MAX_SPHERES).contains(&self.spheres) {
            return Err(format!(
                "{at}: spheres {} outside 2 to {MAX_SPHERES}",
                self.spheres
            ));
        }
        if !(1..=MAX_DIM).contains(&self.dim) {
            return Err(format!("{at}: dim {} outside 1 to {MAX_DIM}", self.dim));
        }
        if self.labels.len() != self.spheres {
            return Err(format!(
                "{at}: labels has {} entries for {} spheres",
                self.labels.len(),
                self.spheres
            ));
        }
        if !self.images.is_empty() && self.images.len() != self.spheres {
            return Err(format!(
                "{at}: images has {} entries for {} spheres",
                self.images.len(),
                self.spheres
            ));
        }
        Ok(())
    }

    /// Reads and checks `DIR/pictures.json`; a missing folder or one with no pictures is named.
    pub fn read(dir: &Path) -> Result<Self, String> {
        if !dir.is_dir() {
            return Err(format!("{}: no such folder", dir.display()));
        }
        let path = dir.join(HEADER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "{}: holds no run's pictures (no {HEADER_FILE}; `clamp train` or \
                     python/clamp_follow.py writes it)",
                    dir.display()
                ));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let header: Self = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a picture header: {e}", path.display()))?;
        header.validate(&path)?;
        Ok(header)
    }
}

/// One picture: the spheres at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub step: u64,
    /// `[N, d]`, row-major.
    pub centers: Vec<f32>,
    pub radii: Vec<f32>,
}

/// The bytes of one record.
pub fn encode_record(picture: &Picture) -> Vec<u8> {
    let mut bytes =
        Vec::with_capacity(RECORD_PREFIX + 4 * (picture.centers.len() + picture.radii.len()));
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&picture.step.to_le_bytes());
    for value in picture.centers.iter().chain(&picture.radii) {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    let checksum = crc32fast::hash(&bytes[8..]);
    bytes[4..8].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Why a record is not a picture (None: it is one).
fn record_problem(record: &[u8]) -> Option<&'static str> {
    if record[..4] != MAGIC {
        return Some("it does not start with CLPF");
    }
    let stored = u32::from_le_bytes(record[4..8].try_into().unwrap_or_default());
    (crc32fast::hash(&record[8..]) != stored).then_some("its checksum does not match")
}

fn decode_record(record: &[u8], header: &PictureHeader) -> Picture {
    let step = u64::from_le_bytes(record[8..16].try_into().unwrap_or_default());
    let values: Vec<f32> = record[RECORD_PREFIX..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let split = header.spheres * header.dim;
    Picture {
        step,
        centers: values[..split].to_vec(),
        radii: values[split..].to_vec(),
    }
}

/// Appends pictures to a run's folder.
pub struct PictureWriter {
    header: PictureHeader,
    file: File,
    path: PathBuf,
    /// The last step written: steps only grow.
    last_step: Option<u64>,
}

impl PictureWriter {
    /// Starts the pictures of a new run in `dir` (any earlier ones are replaced).
    pub fn create(dir: &Path, header: PictureHeader) -> Result<Self, String> {
        header.validate(&dir.join(HEADER_FILE))?;
        let path = dir.join(PICTURES_FILE);
        // The pictures first, so a header never describes another run's pictures.
        let file =
            File::create(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let json = serde_json::to_string_pretty(&header).map_err(|e| e.to_string())?;
        crate::atomic::write_atomically(&dir.join(HEADER_FILE), json.as_bytes())?;
        Ok(Self {
            header,
            file,
            path,
            last_step: None,
        })
    }

    /// Goes on with the pictures in `dir` after a resume from `step`: pictures of later steps
    /// (to be drawn again) and a record an interruption cut short are cut off. A header that
    /// does not match `header` (another model) starts the pictures over.
    pub fn resume(dir: &Path, header: PictureHeader, step: u64) -> Result<Self, String> {
        let path = dir.join(PICTURES_FILE);
        let kept = match PictureHeader::read(dir) {
            Ok(found) if found == header => {
                let read = read_pictures(dir)?;
                let kept = read.pictures.iter().take_while(|p| p.step <= step).count();
                Some((
                    kept,
                    read.pictures.get(kept.wrapping_sub(1)).map(|p| p.step),
                ))
            }
            _ => None,
        };
        let Some((kept, last_step)) = kept else {
            return Self::create(dir, header);
        };
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        file.set_len((kept * header.record_bytes()) as u64)
            .map_err(|e| format!("cannot cut {} back: {e}", path.display()))?;
        let mut file = file;
        file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        Ok(Self {
            header,
            file,
            path,
            last_step,
        })
    }

    pub fn header(&self) -> &PictureHeader {
        &self.header
    }

    pub fn last_step(&self) -> Option<u64> {
        self.last_step
    }

    /// Appends one picture (one write; a step at or before the last is refused).
    pub fn write(&mut self, picture: &Picture) -> Result<(), String> {
        let (n, d) = (self.header.spheres, self.header.dim);
        if picture.centers.len() != n * d || picture.radii.len() != n {
            return Err(format!(
                "a picture of {} centers and {} radii, expected {n} x {d} and {n}",
                picture.centers.len(),
                picture.radii.len()
            ));
        }
        if self.last_step.is_some_and(|last| picture.step <= last) {
            return Err(format!(
                "picture of step {} after step {}",
                picture.step,
                self.last_step.unwrap_or_default()
            ));
        }
        self.file
            .write_all(&encode_record(picture))
            .map_err(|e| format!("cannot append to {}: {e}", self.path.display()))?;
        self.last_step = Some(picture.step);
        Ok(())
    }
}

/// What a read found.
#[derive(Debug, Default)]
pub struct ReadPictures {
    pub pictures: Vec<Picture>,
    /// Why reading stopped before the end of the file (the pictures before it are kept).
    pub damage: Option<String>,
}

/// Every whole picture in `dir`.
pub fn read_pictures(dir: &Path) -> Result<ReadPictures, String> {
    let mut reader = PictureReader::open(dir)?;
    let mut read = reader.read_new()?;
    // A record cut short at the end is damage when nobody is writing: say so.
    if read.damage.is_none() && reader.partial_bytes > 0 {
        read.damage = Some(reader.cut_short_note());
    }
    Ok(read)
}

/// Reads a run's pictures as they are written: each call returns the whole pictures appended
/// since the last.
pub struct PictureReader {
    pub header: PictureHeader,
    path: PathBuf,
    /// Bytes read so far (whole records).
    offset: u64,
    /// Pictures read so far.
    count: usize,
    last_step: Option<u64>,
    /// Bytes of a record not yet whole at the end of the file.
    pub partial_bytes: usize,
    /// Set once a damaged record is met: nothing after it is read.
    damaged: bool,
}

impl PictureReader {
    pub fn open(dir: &Path) -> Result<Self, String> {
        let header = PictureHeader::read(dir)?;
        Ok(Self {
            header,
            path: dir.join(PICTURES_FILE),
            offset: 0,
            count: 0,
            last_step: None,
            partial_bytes: 0,
            damaged: false,
        })
    }

    /// Pictures read so far.
    pub fn count(&self) -> usize {
        self.count
    }

    fn cut_short_note(&self) -> String {
        format!(
            "{}: the last picture is cut short ({} of {} bytes): read the {} whole pictures \
             before it",
            self.path.display(),
            self.partial_bytes,
            self.header.record_bytes(),
            self.count
        )
    }

    /// The whole pictures appended since the last call. A file shorter than what was read
    /// (a resumed run cut it back) is read again from the start: the first picture returned
    /// then has a step at or before the last one returned.
    pub fn read_new(&mut self) -> Result<ReadPictures, String> {
        let mut read = ReadPictures::default();
        if self.damaged {
            return Ok(read);
        }
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            // The header is written after the pictures' file is created: none yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(read),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let length = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?
            .len();
        if length < self.offset {
            self.offset = 0;
            self.count = 0;
            self.last_step = None;
        }
        let size = self.header.record_bytes() as u64;
        let whole = (length - self.offset) / size;
        self.partial_bytes = ((length - self.offset) % size) as usize;
        if whole == 0 {
            return Ok(read);
        }
        file.seek(SeekFrom::Start(self.offset))
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let mut record = vec![0u8; size as usize];
        for _ in 0..whole {
            file.read_exact(&mut record)
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
            let problem = record_problem(&record).map(String::from).or_else(|| {
                let step = u64::from_le_bytes(record[8..16].try_into().unwrap_or_default());
                self.last_step
                    .filter(|&last| step <= last)
                    .map(|last| format!("its step {step} does not follow step {last}"))
            });
            if let Some(problem) = problem {
                read.damage = Some(format!(
                    "{}: picture {} (at byte {}) is damaged: {problem}; read the {} pictures \
                     before it",
                    self.path.display(),
                    self.count + 1,
                    self.offset,
                    self.count
                ));
                self.damaged = true;
                self.partial_bytes = 0;
                break;
            }
            let picture = decode_record(&record, &self.header);
            self.last_step = Some(picture.step);
            self.offset += size;
            self.count += 1;
            read.pictures.push(picture);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("clamp-pictures-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn picture(step: u64, n: usize, d: usize) -> Picture {
        Picture {
            step,
            centers: (0..n * d).map(|k| (k as f32 + step as f32).sin()).collect(),
            radii: (0..n).map(|k| 0.01 * (k + 1) as f32).collect(),
        }
    }

    fn header(n: usize, d: usize) -> PictureHeader {
        PictureHeader::new(
            d,
            (0..n).map(|k| (k % 10) as u16).collect(),
            Vec::new(),
            "test",
        )
    }

    #[test]
    fn a_record_is_laid_out_as_documented() {
        let p = Picture {
            step: 7,
            centers: vec![1.0, -2.0],
            radii: vec![0.5],
        };
        let bytes = encode_record(&p);
        assert_eq!(bytes.len(), 16 + 4 * 3);
        assert_eq!(&bytes[..4], b"CLPF");
        assert_eq!(bytes[8..16], 7u64.to_le_bytes());
        assert_eq!(bytes[16..20], 1.0f32.to_le_bytes());
        assert_eq!(bytes[24..28], 0.5f32.to_le_bytes());
        // zlib's CRC-32 of the bytes after it: for "123456789" it is 0xCBF43926.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            crc32fast::hash(&bytes[8..])
        );
    }

    #[test]
    fn pictures_are_read_as_they_are_appended_and_a_partial_one_is_waited_for() {
        let dir = temp_dir("append");
        let mut writer = PictureWriter::create(&dir, header(5, 3)).unwrap();
        let mut reader = PictureReader::open(&dir).unwrap();
        assert!(reader.read_new().unwrap().pictures.is_empty());
        writer.write(&picture(0, 5, 3)).unwrap();
        writer.write(&picture(10, 5, 3)).unwrap();
        let read = reader.read_new().unwrap();
        assert_eq!(read.pictures, vec![picture(0, 5, 3), picture(10, 5, 3)]);
        // Half a record (a write in progress) is not returned, nor called damage.
        let bytes = encode_record(&picture(20, 5, 3));
        let path = dir.join(PICTURES_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&bytes[..30]).unwrap();
        let read = reader.read_new().unwrap();
        assert!(read.pictures.is_empty() && read.damage.is_none());
        file.write_all(&bytes[30..]).unwrap();
        assert_eq!(reader.read_new().unwrap().pictures, vec![picture(20, 5, 3)]);
        assert!(writer.write(&picture(10, 5, 3)).is_err(), "steps only grow");
        assert!(
            writer.write(&picture(30, 4, 3)).is_err(),
            "wrong size refused"
        );
    }

    #[test]
    fn a_resume_cuts_back_later_pictures_and_a_torn_one() {
        let dir = temp_dir("resume");
        let mut writer = PictureWriter::create(&dir, header(4, 2)).unwrap();
        for step in [0, 5, 10, 15] {
            writer.write(&picture(step, 4, 2)).unwrap();
        }
        let torn = encode_record(&picture(20, 4, 2));
        writer.file.write_all(&torn[..9]).unwrap();
        drop(writer);
        let mut writer = PictureWriter::resume(&dir, header(4, 2), 10).unwrap();
        assert_eq!(writer.last_step(), Some(10));
        writer.write(&picture(12, 4, 2)).unwrap();
        let read = read_pictures(&dir).unwrap();
        let steps: Vec<u64> = read.pictures.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 5, 10, 12]);
        assert!(read.damage.is_none());
        // Another shape starts over.
        let writer = PictureWriter::resume(&dir, header(4, 3), 10).unwrap();
        assert_eq!(writer.last_step(), None);
        assert!(read_pictures(&dir).unwrap().pictures.is_empty());
    }

    #[test]
    fn damaged_files_give_the_pictures_before_the_damage_or_a_named_error() {
        let dir = temp_dir("fuzz");
        let (n, d) = (6, 4);
        let mut writer = PictureWriter::create(&dir, header(n, d)).unwrap();
        // (Kept as written: the compiler may fold the sines above a bit differently.)
        let written: Vec<Picture> = (0..8).map(|k| picture(3 * k, n, d)).collect();
        for picture in &written {
            writer.write(picture).unwrap();
        }
        drop(writer);
        let path = dir.join(PICTURES_FILE);
        let whole = std::fs::read(&path).unwrap();
        let size = header(n, d).record_bytes();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed = crate::seed::splitmix64(seed);
            seed
        };
        for case in 0..300 {
            let mut bytes = whole.clone();
            let mut expect_before = None;
            match case % 3 {
                // Cut short anywhere.
                0 => {
                    let at = (next() as usize) % bytes.len();
                    bytes.truncate(at);
                    expect_before = Some(at / size);
                }
                // One byte flipped.
                1 => {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] ^= 1 << (next() % 8);
                    expect_before = Some(at / size);
                }
                // Garbage of a random length appended.
                _ => {
                    let extra = 1 + (next() as usize) % (2 * size);
                    bytes.extend((0..extra).map(|_| next() as u8));
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let read = read_pictures(&dir).unwrap();
            let count = read.pictures.len();
            match expect_before {
                Some(before) => {
                    assert_eq!(count, before, "case {case}: pictures before the damage");
                }
                None => assert_eq!(count, 8, "case {case}: appended garbage"),
            }
            for (k, p) in read.pictures.iter().enumerate() {
                assert_eq!(p, &written[k], "case {case}: picture {k}");
            }
            // Cut at a record's end leaves whole pictures only: nothing to report.
            let damaged = !(case % 3 == 0 && bytes.len() % size == 0);
            assert_eq!(
                read.damage.is_some(),
                damaged,
                "case {case}: {:?}",
                read.damage
            );
            if let Some(note) = &read.damage {
                assert!(note.contains("pictures.bin"), "names the file: {note}");
            }
        }
        // Headers: wrong sizes, another format, not JSON, a missing folder or none at all.
        let bad = [
            (
                r#"{"format":"clamp-pictures","version":1,"spheres":3,"dim":2,"labels":[0,1]}"#,
                "labels",
            ),
            (
                r#"{"format":"clamp-pictures","version":1,"spheres":2,"dim":0,"labels":[0,1]}"#,
                "dim",
            ),
            (
                r#"{"format":"clamp-pictures","version":1,"spheres":1000000000,"dim":2,"labels":[]}"#,
                "spheres",
            ),
            (
                r#"{"format":"other","version":1,"spheres":2,"dim":2,"labels":[0,1]}"#,
                "format",
            ),
            (
                r#"{"format":"clamp-pictures","version":9,"spheres":2,"dim":2,"labels":[0,1]}"#,
                "version",
            ),
            (
                r#"{"format":"clamp-pictures","version":1,"spheres":2"#,
                "not a picture header",
            ),
        ];
        for (text, field) in bad {
            std::fs::write(dir.join(HEADER_FILE), text).unwrap();
            let e = PictureReader::open(&dir).err().unwrap();
            assert!(e.contains("pictures.json") && e.contains(field), "{e}");
        }
        // A header whose sizes disagree with the records: the first record is damaged.
        std::fs::write(
            dir.join(HEADER_FILE),
            serde_json::to_string(&header(n, d + 1)).unwrap(),
        )
        .unwrap();
        std::fs::write(&path, &whole).unwrap();
        let read = read_pictures(&dir).unwrap();
        assert!(read.pictures.is_empty() && read.damage.is_some());
        let e = PictureReader::open(&dir.join("missing")).err().unwrap();
        assert!(e.contains("missing") && e.contains("no such folder"), "{e}");
        let empty = temp_dir("empty");
        let e = PictureReader::open(&empty).err().unwrap();
        assert!(e.contains("holds no run"), "{e}");
    }
}
