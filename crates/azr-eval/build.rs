//! Compresses the repository's evaluation sets (`data/` at the workspace root) into OUT_DIR and
//! writes the table `src/data/embedded.rs` includes, so every binary carries the data (5.7 MB
//! of JSON Lines, about 1.2 MB deflated) and `azr eval` needs no data folder.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// The embedded files, relative to `data/`. A missing one fails the build.
const FILES: &[&str] = &[
    "code/cruxeval.jsonl",
    "code/mbppplus.jsonl",
    "math/aime24.jsonl",
    "math/aime25.jsonl",
    "math/amc23.jsonl",
    "math/gsm8k.jsonl",
    "math/math500.jsonl",
    "math/minerva_math.jsonl",
    "math/olympiadbench.jsonl",
];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let data = Path::new(&manifest).join("../../data");
    let mut table = String::from("&[\n");
    for rel in FILES {
        let src = data.join(rel);
        println!("cargo:rerun-if-changed={}", src.display());
        let raw = std::fs::read(&src)
            .unwrap_or_else(|e| panic!("reading the evaluation set {}: {e}", src.display()));
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).expect("compressing into memory");
        let packed = enc.finish().expect("compressing into memory");
        let dst = Path::new(&out).join(rel.replace('/', "__") + ".zlib");
        std::fs::write(&dst, packed).unwrap_or_else(|e| panic!("writing {}: {e}", dst.display()));
        writeln!(
            table,
            "    ({rel:?}, {}, include_bytes!({:?})),",
            raw.len(),
            dst.display().to_string()
        )
        .expect("writing to a String");
    }
    table.push_str("]\n");
    std::fs::write(Path::new(&out).join("embedded_files.rs"), table)
        .unwrap_or_else(|e| panic!("writing the embedded data table: {e}"));
}
