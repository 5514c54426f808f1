//! The policy objective of one response token, in plain sight.
//!
//! PPO's clipped surrogate with separate lower and upper clip ranges (DAPO's clip-higher), as a
//! function of the token's log-prob under the current policy `logp`, its log-prob when it was
//! sampled `old`, and its advantage `A`:
//!
//! ```text
//! rho  = exp(logp - old)
//! loss = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high))
//! ```
//!
//! and the derivative the backward pass needs, `d loss / d logp`: `-A rho` where the unclipped
//! term is the max, 0 where the clipped one is (it is constant in `logp`: the trust region).
//! Everything else of the update (the vocabulary softmax, the entropy bonus, the token-mean
//! scale) is the head's business (`head.rs`); to change the objective, change this function.

/// One token's surrogate loss and what the backward pass and the statistics need of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TokenObjective {
    pub loss: f64,
    /// `d loss / d logp`.
    pub grad: f64,
    /// The clipped term is the max: no gradient flows.
    pub clipped: bool,
    /// The importance ratio `exp(logp - old)`.
    pub ratio: f64,
}

/// The clipped surrogate of one token (see the module documentation).
pub(crate) fn clipped_surrogate(
    logp: f64,
    old: f64,
    advantage: f64,
    clip_low: f64,
    clip_high: f64,
) -> TokenObjective {
    let ratio = (logp - old).exp();
    let unclipped = -advantage * ratio;
    let clipped = -advantage * ratio.clamp(1.0 - clip_low, 1.0 + clip_high);
    let is_clipped = clipped > unclipped;
    TokenObjective {
        loss: unclipped.max(clipped),
        grad: if is_clipped { 0.0 } else { -advantage * ratio },
        clipped: is_clipped,
        ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: f64 = 0.2;
    const HIGH: f64 = 0.28;

    /// The objective at importance ratio `ratio` and advantage `a`.
    fn at(ratio: f64, a: f64) -> TokenObjective {
        clipped_surrogate(ratio.ln() - 0.7, -0.7, a, LOW, HIGH)
    }

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() < 1e-12
    }

    #[test]
    fn on_policy_the_loss_is_minus_the_advantage_and_its_gradient_too() {
        let o = clipped_surrogate(-1.3, -1.3, 0.5, LOW, HIGH);
        assert_eq!(o.ratio, 1.0);
        assert_eq!((o.loss, o.grad, o.clipped), (-0.5, -0.5, false));
    }

    #[test]
    fn a_good_token_pushed_past_one_plus_clip_high_stops_getting_gradient() {
        // A = 1, rho = 1.5: max(-1.5, -1.28) = -1.28, the clipped term.
        let o = at(1.5, 1.0);
        assert!(close(o.loss, -1.28) && o.clipped && o.grad == 0.0, "{o:?}");
        // rho = 1.2 is inside the range: -A rho and its gradient -1.2.
        let o = at(1.2, 1.0);
        assert!(
            close(o.loss, -1.2) && !o.clipped && close(o.grad, -1.2),
            "{o:?}"
        );
        // A good token made less likely is never clipped: rho = 0.5 gives max(-0.5, -0.8).
        let o = at(0.5, 1.0);
        assert!(
            close(o.loss, -0.5) && !o.clipped && close(o.grad, -0.5),
            "{o:?}"
        );
    }

    #[test]
    fn a_bad_token_pushed_below_one_minus_clip_low_stops_getting_gradient() {
        // A = -2, rho = 0.5: max(1.0, 1.6) = 1.6, the clipped term.
        let o = at(0.5, -2.0);
        assert!(close(o.loss, 1.6) && o.clipped && o.grad == 0.0, "{o:?}");
        // A bad token made more likely is never clipped: rho = 1.5 gives max(3.0, 2.56) and
        // the gradient -A rho = 3.
        let o = at(1.5, -2.0);
        assert!(
            close(o.loss, 3.0) && !o.clipped && close(o.grad, 3.0),
            "{o:?}"
        );
    }

    #[test]
    fn zero_advantage_gives_nothing() {
        let o = at(1.7, 0.0);
        assert!(o.loss == 0.0 && o.grad == 0.0 && !o.clipped, "{o:?}");
    }
}
