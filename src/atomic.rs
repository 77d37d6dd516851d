//! Files that are whole or absent: everything clamp writes for the user (checkpoints, presets,
//! videos, embeddings, metrics rewritten on resume) goes through here, so an interruption or
//! a full disk never leaves half a file under the final name.

use std::fs;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, and a
/// rename: readers see the old content or the new, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    write_synced(&temporary, bytes)
        .and_then(|()| fs::rename(&temporary, path).map_err(|e| e.to_string()))
        .map_err(|e| {
            let _ = fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })?;
    if let Some(parent) = path.parent() {
        sync_dir(parent);
    }
    Ok(())
}

pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = fs::File::create(path).map_err(|e| e.to_string())?;
    file.write_all(bytes).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())
}

/// Makes a rename or a new entry in `dir` durable. Best effort: not every file system lets a
/// directory be opened for syncing.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}
