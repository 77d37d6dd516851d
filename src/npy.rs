//! A small reader and writer for NumPy `.npy` arrays of float32 / float64 (format versions 1-3),
//! so embeddings made elsewhere (for example by the authors' PyTorch code) can be measured here.

use std::fs;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// A dense array in C (row-major) order, converted to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Reads a float32 or float64 `.npy` file. Every error names the file and the problem.
pub fn read_npy(path: &Path) -> Result<NpyArray, String> {
    let name = path.display();
    let bytes = fs::read(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    parse_npy(&bytes).map_err(|problem| format!("{name}: {problem}"))
}

fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 if bytes.len() >= 10 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        1..=3 => return Err("truncated header".into()),
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;

    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let fortran = match fortran {
        "True" => true,
        "False" => false,
        other => return Err(format!("unreadable fortran_order {other:?}")),
    };
    let shape = parse_shape(dict_value(header, "shape").ok_or("header has no 'shape'")?)?;

    let (width, big_endian) = match descr {
        "<f4" | "=f4" => (4, false),
        ">f4" => (4, true),
        "<f8" | "=f8" => (8, false),
        ">f8" => (8, true),
        other => {
            return Err(format!(
                "unsupported dtype '{other}': only float32 and float64 are supported"
            ));
        }
    };
    let expected = shape
        .iter()
        .try_fold(width, |total: usize, &d| total.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} is too large to address"))?;
    let payload = &bytes[data_start..];
    if payload.len() < expected {
        return Err(format!(
            "truncated: shape {shape:?} needs {expected} bytes of data, found {}",
            payload.len()
        ));
    }
    let mut data: Vec<f64> = payload[..expected]
        .chunks_exact(width)
        .map(|chunk| match (width, big_endian) {
            (4, false) => f32::from_le_bytes(chunk.try_into().unwrap()) as f64,
            (4, true) => f32::from_be_bytes(chunk.try_into().unwrap()) as f64,
            (_, false) => f64::from_le_bytes(chunk.try_into().unwrap()),
            (_, true) => f64::from_be_bytes(chunk.try_into().unwrap()),
        })
        .collect();
    if fortran && shape.len() > 1 {
        data = fortran_to_c_order(&data, &shape);
    }
    Ok(NpyArray { shape, data })
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("unreadable shape {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("unreadable shape {text}")))
        .collect()
}

fn fortran_to_c_order(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let mut out = vec![0.0; data.len()];
    let mut index = vec![0usize; shape.len()];
    for value in out.iter_mut() {
        // Column-major offset of the current row-major multi-index.
        let mut offset = 0;
        let mut stride = 1;
        for (axis, &i) in index.iter().enumerate() {
            offset += i * stride;
            stride *= shape[axis];
        }
        *value = data[offset];
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// Encodes a little-endian float32 `.npy` (version 1) in C order.
pub fn encode_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + header.len() + data.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for x in data {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}
