//! Tokenizers and chat templates, from a Hugging Face directory (`tokenizer.json`,
//! `tokenizer_config.json`) or from GGUF metadata.
//!
//! From GGUF we build a byte-level BPE ourselves rather than using candle's GGUF tokenizer, which
//! gives wrong ids for SmolLM (it does not know `pre = "smollm"` and adds a prefix space). The
//! recipe below matches llama.cpp and transformers: BPE over `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges`, the pre-tokenizer named by `tokenizer.ggml.pre`, a byte-level decoder,
//! and every token of type 3 (control) or 4 (user-defined) registered as a special token.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file;
use serde::Serialize;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// The GPT-4-style split used by Qwen2 (llama.cpp `pre = "qwen2"`, and the `Split` pre-tokenizer
/// of Qwen2's `tokenizer.json`): contractions, letter runs with one leading non-letter, single
/// digits, punctuation runs, newlines, spaces.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer with the model's chat template and special tokens.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Prepend BOS when encoding with `add_special_tokens` (GGUF `tokenizer.ggml.add_bos_token`;
    /// a `tokenizer.json` does this through its own post-processor instead).
    add_bos_id: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

fn tk_err(e: tokenizers::Error) -> anyhow::Error {
    anyhow!("{e}")
}

impl Tokenizer {
    /// Builds the tokenizer described by GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let model = crate::config::get_str(md, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            bail!(
                "tokenizer.ggml.model = {model:?} is not supported (only byte-level BPE, \"gpt2\")"
            );
        }
        let tokens: Vec<String> = md
            .get("tokenizer.ggml.tokens")
            .context("missing metadata key tokenizer.ggml.tokens")?
            .to_vec()
            .context("tokenizer.ggml.tokens is not an array")?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<candle_core::Result<_>>()
            .context("tokenizer.ggml.tokens holds a non-string")?;
        let merges: Vec<(String, String)> = md
            .get("tokenizer.ggml.merges")
            .context("missing metadata key tokenizer.ggml.merges")?
            .to_vec()
            .context("tokenizer.ggml.merges is not an array")?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = v
                    .to_string()
                    .map_err(|_| anyhow!("merge {i} is not a string"))?;
                let (a, b) = s
                    .split_once(' ')
                    .with_context(|| format!("merge {i} ({s:?}) is not two tokens"))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<_>>()?;
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .context("tokenizer.ggml.token_type is not an array")?
                .iter()
                .map(|x| match x {
                    gguf_file::Value::I32(t) => Ok(*t as i64),
                    gguf_file::Value::U32(t) => Ok(*t as i64),
                    gguf_file::Value::I8(t) => Ok(*t as i64),
                    gguf_file::Value::U8(t) => Ok(*t as i64),
                    other => bail!("tokenizer.ggml.token_type holds {other:?}"),
                })
                .collect::<Result<_>>()?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            bail!(
                "tokenizer.ggml.token_type has {} entries for {} tokens",
                types.len(),
                tokens.len()
            );
        }
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tk_err)
            .context("building the BPE model from tokenizer.ggml.tokens/merges")?;
        let mut inner = tokenizers::Tokenizer::new(bpe);

        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("default");
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            // SmolLM: digits one by one, then GPT-2's byte-level split, no prefix space.
            "smollm" => Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            "qwen2" => {
                inner.with_normalizer(Some(NFC)).map_err(tk_err)?;
                Sequence::new(vec![
                    Split::new(
                        SplitPattern::Regex(QWEN2_SPLIT.to_string()),
                        SplitDelimiterBehavior::Isolated,
                        false,
                    )
                    .map_err(tk_err)?
                    .into(),
                    ByteLevel::new(false, false, false).into(),
                ])
                .into()
            }
            "gpt-2" | "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
            other => bail!(
                "tokenizer.ggml.pre = {other:?} is not supported (smollm, qwen2, gpt-2); \
                 use the model's Hugging Face directory instead"
            ),
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &ty)| ty == 3 || ty == 4)
            .map(|(t, _)| AddedToken::from(t.clone(), true))
            .collect();
        inner.add_special_tokens(specials).map_err(tk_err)?;

        let token_at = |key: &str| -> Option<String> {
            let id = crate::config::get_usize(md, key).ok()?;
            tokens.get(id).cloned()
        };
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let add_bos_id = if add_bos {
            crate::config::get_usize(md, "tokenizer.ggml.bos_token_id")
                .ok()
                .map(|x| x as u32)
        } else {
            None
        };
        Ok(Self {
            inner,
            chat_template: md
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .cloned(),
            bos_token: token_at("tokenizer.ggml.bos_token_id"),
            eos_token: token_at("tokenizer.ggml.eos_token_id"),
            add_bos_id,
        })
    }

    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json` (chat template, BOS/EOS).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        let mut tok = Self {
            inner,
            chat_template: None,
            bos_token: None,
            eos_token: None,
            add_bos_id: None,
        };
        let cfg_path = dir.join("tokenizer_config.json");
        if cfg_path.is_file() {
            let text = std::fs::read_to_string(&cfg_path)
                .with_context(|| format!("reading {}", cfg_path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", cfg_path.display()))?;
            tok.chat_template = match v.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                // A list of named templates: take "default".
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .or(list.first())
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .map(str::to_string),
                _ => None,
            };
            let token_str = |key: &str| match v.get(key) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(obj) => obj
                    .get("content")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
                None => None,
            };
            tok.bos_token = token_str("bos_token");
            tok.eos_token = token_str("eos_token");
            if v.get("add_bos_token").and_then(|b| b.as_bool()) == Some(true) {
                tok.add_bos_id = tok
                    .bos_token
                    .as_deref()
                    .and_then(|t| tok.inner.token_to_id(t));
            }
        }
        // Newer checkpoints keep the template in its own file.
        let jinja = dir.join("chat_template.jinja");
        if tok.chat_template.is_none() && jinja.is_file() {
            tok.chat_template = Some(
                std::fs::read_to_string(&jinja)
                    .with_context(|| format!("reading {}", jinja.display()))?,
            );
        }
        Ok(tok)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` (chat template, BOS/EOS) into `dir`,
    /// the files [`Self::from_hf_dir`] reads back.
    pub fn save_hf(&self, dir: &Path) -> Result<()> {
        let path = dir.join("tokenizer.json");
        self.inner
            .save(&path, false)
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
        let mut cfg = serde_json::Map::new();
        if let Some(t) = &self.chat_template {
            cfg.insert("chat_template".into(), t.clone().into());
        }
        if let Some(t) = &self.bos_token {
            cfg.insert("bos_token".into(), t.clone().into());
        }
        if let Some(t) = &self.eos_token {
            cfg.insert("eos_token".into(), t.clone().into());
        }
        cfg.insert(
            "add_bos_token".into(),
            serde_json::Value::Bool(self.add_bos_id.is_some()),
        );
        let path = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(cfg))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Encodes text. Special tokens written in the text (`<|im_start|>`) become their ids.
    /// `add_special_tokens` adds what the tokenizer adds around a sequence (e.g. BOS); leave it
    /// off for text rendered by a chat template, which writes those tokens itself.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, add_special_tokens)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        if let (true, Some(bos)) = (add_special_tokens, self.add_bos_id) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| anyhow!("decoding: {e}"))
    }

    /// Renders the chat template (Jinja, as in `transformers`' `apply_chat_template`). A message
    /// is anything that serializes as `{"role": ..., "content": ...}`: azr-core's `ChatMessage`,
    /// or a JSON object.
    pub fn apply_chat_template(
        &self,
        messages: &[impl Serialize],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .context("the model has no chat template")?;
        render_chat_template(
            template,
            messages,
            add_generation_prompt,
            self.bos_token.as_deref().unwrap_or(""),
            self.eos_token.as_deref().unwrap_or(""),
        )
    }
}

/// Renders a Hugging Face chat template with minijinja. Python string methods used by many
/// templates (`.strip()`, `.startswith()`...) come from minijinja-contrib's pycompat layer.
pub fn render_chat_template(
    template: &str,
    messages: &[impl Serialize],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", template)
        .context("parsing the chat template")?;
    let tmpl = env.get_template("chat")?;
    let ctx: HashMap<&str, minijinja::Value> = HashMap::from([
        ("messages", minijinja::Value::from_serialize(messages)),
        ("add_generation_prompt", add_generation_prompt.into()),
        ("bos_token", bos_token.into()),
        ("eos_token", eos_token.into()),
    ]);
    tmpl.render(ctx).context("rendering the chat template")
}
