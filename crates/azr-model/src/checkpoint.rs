//! Checkpoints as Hugging Face directories (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`), written atomically: everything goes into a
//! temporary sibling directory that is renamed into place only once complete and synced, so a
//! crash at any moment leaves either the previous state or the whole new checkpoint.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use crate::model::Model;
use crate::tokenizer::Tokenizer;

/// Writes `model` and `tokenizer` as a Hugging Face directory into `dir` (created if missing).
/// A tied LM head is not written twice (`tie_word_embeddings` says so in `config.json`).
pub fn write_hf_files(model: &Model, tokenizer: &Tokenizer, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = model.config().to_hf_json();
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&cfg)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let weights: HashMap<String, Tensor> = model.named_weights().into_iter().collect();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&weights, &path)
        .with_context(|| format!("writing {}", path.display()))?;
    tokenizer.save_hf(dir)
}

/// Creates `dir` atomically: `fill` writes into a fresh temporary sibling, whose files are then
/// synced and which is renamed to `dir`. Fails if `dir` already exists (checkpoints are never
/// overwritten in place). A leftover temporary directory from a crash is removed first.
pub fn create_dir_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let tmp = temp_sibling(dir)?;
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing the stale {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = fill(&tmp).and_then(|()| sync_dir_tree(&tmp));
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if let Some(parent) = dir.parent() {
        sync_path(parent)?;
    }
    Ok(())
}

/// Writes a file atomically (temporary sibling, fsync, rename).
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    create_file_atomically(path, |f| Ok(f.write_all(bytes)?))
}

/// Creates the file `path` atomically: `fill` writes a temporary sibling (whose name starts
/// with a dot and does not end like `path`), which is synced and renamed to `path`.
pub fn create_file_atomically(
    path: &Path,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let tmp = temp_sibling(path)?;
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let written = fill(&mut f).and_then(|()| Ok(f.sync_all()?));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("writing {}", tmp.display())));
        }
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(parent) = path.parent() {
        sync_path(parent)?;
    }
    Ok(())
}

fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", std::process::id())))
}

fn sync_path(path: &Path) -> Result<()> {
    let parent = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    File::open(parent)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", parent.display()))
}

fn sync_dir_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            sync_dir_tree(&path)?;
        } else {
            sync_path(&path)?;
        }
    }
    sync_path(dir)
}
