//! The policy as the step driver sees it: prompts in, one response per prompt out.
//!
//! The real model (sampling at the training temperature) implements [`Policy`] later; tests
//! implement it with scripted responses. The trait is object-safe (`&mut dyn Policy`).

use crate::task::Group;
use serde::{Deserialize, Serialize};

/// Why a response is generated. All are sampled the same way (spec: learnability is estimated
/// at the training temperature); the purpose lets an implementation log or batch them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A proposer or solver rollout that is trained on.
    Rollout,
    /// One of the n solver samples that estimate a new proposal's solve rate (not trained on).
    Learnability,
    /// A proposer response of the seeding phase, before any update (not trained on).
    Seeding,
    /// A response of the format warm-up ([`crate::warmup`]): trained on only when verified,
    /// rewrapped, with cross-entropy.
    Warmup,
}

/// One prompt to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenRequest {
    /// The rendered prompt (ends with the prefilled `<think>`).
    pub prompt: String,
    pub group: Group,
    pub purpose: Purpose,
}

/// Text the environment appended to a response ([`crate::scaffold`]): not sampled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// Index of its first token in `token_ids`.
    pub token: usize,
    pub text: String,
}

/// One generated response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The decoded response text, without the prompt and without special tokens (appended
    /// scaffold text included).
    pub text: String,
    /// Number of tokens the policy sampled: TRR++ weighs each sequence by it.
    pub tokens: usize,
    /// The prompt's token ids, as the policy fed them (empty when the policy does not report
    /// them): training rows need no second tokenization.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_ids: Vec<u32>,
    /// The response's token ids, in order, sampled and appended (empty when the policy does not
    /// report them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<u32>,
    /// The log-probability of each token at sampling time, aligned with `token_ids` (0 for an
    /// appended token; empty when the policy does not report them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<f32>,
    /// Per token of `token_ids`: sampled by the policy (true) or appended by the environment
    /// (false). Empty: all sampled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampled: Vec<bool>,
    /// The appended spans, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<Injected>,
}

impl Response {
    /// A response known only by its text and token count.
    pub fn new(text: impl Into<String>, tokens: usize) -> Self {
        Response {
            text: text.into(),
            tokens,
            prompt_ids: Vec::new(),
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            sampled: Vec::new(),
            injected: Vec::new(),
        }
    }

    /// Whether the environment completed this response's structure.
    pub fn scaffolded(&self) -> bool {
        !self.injected.is_empty()
    }

    /// A response with its sampled token ids and their sampling-time log-probs;
    /// `tokens = token_ids.len()`.
    pub fn sampled(text: String, token_ids: Vec<u32>, logprobs: Vec<f32>) -> Self {
        Response {
            text,
            tokens: token_ids.len(),
            token_ids,
            logprobs,
            ..Response::new("", 0)
        }
    }
}

/// An error of the policy (the model engine), passed through unchanged.
pub type PolicyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Something that answers prompts: the model being trained.
pub trait Policy {
    /// One response per request, in request order. Returning another number of responses is
    /// an error the step driver reports (it never guesses which response belongs where).
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError>;
}

impl<F> Policy for F
where
    F: FnMut(&[GenRequest]) -> Result<Vec<Response>, PolicyError>,
{
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        self(requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_are_policies_and_the_trait_is_object_safe() {
        let mut echo = |reqs: &[GenRequest]| -> Result<Vec<Response>, PolicyError> {
            Ok(reqs
                .iter()
                .map(|r| Response::new(r.prompt.clone(), r.prompt.len()))
                .collect())
        };
        let p: &mut dyn Policy = &mut echo;
        let req = GenRequest {
            prompt: "abc".into(),
            group: Group::SOLVE_DEDUCTION,
            purpose: Purpose::Rollout,
        };
        assert_eq!(p.generate(&[req]).unwrap(), vec![Response::new("abc", 3)]);
    }

    #[test]
    fn sampled_counts_its_tokens_and_round_trips() {
        let r = Response::sampled("hi".into(), vec![7, 8, 9], vec![-0.5, -1.25, 0.0]);
        assert_eq!(r.tokens, 3);
        assert_eq!(
            (r.token_ids.as_slice(), r.logprobs.as_slice()),
            (&[7, 8, 9][..], &[-0.5, -1.25, 0.0][..])
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Response>(&json).unwrap(), r);
        // a plain response serialises without the vectors and reads back with them empty
        let plain = serde_json::to_string(&Response::new("x", 2)).unwrap();
        assert_eq!(plain, r#"{"text":"x","tokens":2}"#);
        let back: Response = serde_json::from_str(&plain).unwrap();
        assert!(back.token_ids.is_empty() && back.logprobs.is_empty());
    }
}
