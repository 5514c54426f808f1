//! The repository's evaluation sets (`data/` at the workspace root), built into the crate: the
//! build script deflates each file and this module inflates it on demand.

use std::io::Read;

/// (path relative to `data/`, uncompressed size, zlib stream), written by `build.rs`.
const FILES: &[(&str, usize, &[u8])] = include!(concat!(env!("OUT_DIR"), "/embedded_files.rs"));

/// The relative paths of every built-in file.
pub fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(rel, _, _)| *rel)
}

/// The text of the built-in file `relative` (e.g. `code/cruxeval.jsonl`).
pub fn text(relative: &str) -> std::io::Result<String> {
    let (_, size, packed) = FILES
        .iter()
        .find(|(rel, _, _)| *rel == relative)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no built-in data file {relative:?}"),
            )
        })?;
    let mut text = String::with_capacity(*size);
    flate2::read::ZlibDecoder::new(*packed).read_to_string(&mut text)?;
    // The size check catches a table that no longer matches its streams.
    if text.len() != *size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "built-in {relative} inflates to {} bytes, expected {size}",
                text.len()
            ),
        ));
    }
    Ok(text)
}
